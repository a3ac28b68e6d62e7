"""The host table's drawn rows: an unchanged row keeps its line (render_line
caches it), a changed row, the cursor and the focus are drawn anew."""
from console.tui.fleet_table import FleetTable
from strategies.events import InstanceChanged

from .scenarios import scene_app


def reversed_(strip) -> bool:
    return any(segment.style is not None and segment.style.reverse for segment in strip)


async def test_rows_are_redrawn_on_a_change_and_only_then():
    app = scene_app("rolling-mid-batch")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        table = app.screen.query_one(FleetTable)
        first, second = table.keys[0], table.keys[1]
        line = table.render_line(1)
        assert first in line.text and reversed_(line)  # the cursor, focused
        assert table.render_line(1) is line  # unchanged: the same line
        app.view.apply(InstanceChanged(at=app.view.elapsed, instance=first, phase="draining"))
        app.repaint(force=True)
        changed = table.render_line(1)
        assert "draining" in changed.text and "draining" not in line.text
        await pilot.press("down")
        assert not reversed_(table.render_line(1)) and reversed_(table.render_line(2))
        assert second in table.render_line(2).text
        table.blur()
        await pilot.pause(0.05)
        assert not reversed_(table.render_line(2))  # unfocused: the cursor row is underlined instead
        assert any(s.style is not None and s.style.underline for s in table.render_line(2))
