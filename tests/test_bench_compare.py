"""Before/after on one machine (issue 26): bench/vs_ansible.py --against and
bench/tui_tmux.py --against share the alternation and ratio code in
bench/_common.py. Pure: the order of the runs, the ratios, and the tables
printed from a sitting's results, without hosts (the 50-host sitting itself
is a benchmark, run by hand)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _common  # noqa: E402
import vs_ansible  # noqa: E402


def test_no_side_always_goes_first():
    assert _common.alternating(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert _common.alternating(["a", "b", "c"], 1) == ["c", "b", "a"]
    assert vs_ansible.run_order(3, ["this", "against"]) == [
        (0, "console"), (0, "console@against"), (0, "ansible"),
        (1, "ansible"), (1, "console@against"), (1, "console"),
        (2, "console"), (2, "console@against"), (2, "ansible")]
    assert vs_ansible.run_order(2, ["this"]) == [(0, "console"), (0, "ansible"), (1, "ansible"), (1, "console")]


def run(wall, ok=True, startup=1.0):
    return {"ok": ok, "wall": wall, "cpu": wall / 2, "failed_requests": 0, "requests": int(wall * 50),
            "expected_requests": wall * 50, "restart_events": [0.3], "reloads": [0.2],
            "breakdown": {"wall": wall, "start-up + exit": startup, "changes": 4.0, "steps": {}}}


def test_ratios_pair_runs_of_the_same_round_and_leave_failed_rounds_out():
    this = [run(10.0), run(12.0, ok=False), run(11.0)]
    other = [run(40.0), run(50.0), run(44.0)]
    assert vs_ansible.per_round(this, other) == [4.0, 4.0]
    assert _common.ratio_of_medians([1.0, 2.0, 3.0], [4.0, 4.0]) == 0.5
    assert _common.ratio_of_medians([1.0], []) is None


def test_a_sitting_prints_each_tree_against_ansible_and_this_against_that(capsys):
    this, before, ansible = [run(8.0), run(9.0), run(10.0)], [run(10.0), run(12.0), run(9.0)], [run(40.0)] * 3
    vs_ansible.against_ansible("console", this, ansible, [3.0, 3.0, 3.0], 50, 5)
    vs_ansible.before_after(this, before)
    out = capsys.readouterr().out
    assert "| wall time | 9.00 s (8.00-10.00, n=3) | 40.00 s (40.00-40.00, n=3) | 4.44 x (4.00-5.00, n=3) |" in out
    assert "| start-up + exit (apart) | 1.00 s (1.00-1.00, n=3) |" in out
    assert "| wall without start-up + exit | 8.00 s (7.00-9.00, n=3) |" in out
    assert "this / against, console wall: per round 0.80 x (0.75-1.11, n=3); ratio of the medians 0.900x" in out


def test_the_console_runs_from_the_tree_it_is_given(tmp_path, capsys):
    """--against DIR: `python -m console` imports DIR's code, and the sitting names DIR's commit."""
    assert _common.tree_env(tmp_path, {"PATH": "/bin"}) == {"PATH": "/bin", "PYTHONPATH": str(tmp_path)}
    sides = _common.trees(_common.ROOT, _common.ROOT / "bench")
    assert sides == {"this": _common.ROOT, "against": _common.ROOT / "bench"}
    out = capsys.readouterr().out
    assert f"console (this) from {_common.ROOT}\n" in out
    assert f"console (against) from {_common.ROOT / 'bench'} at commit " in out


@pytest.mark.parametrize("script", ["vs_ansible.py", "tui_tmux.py"])
def test_both_benchmarks_offer_against(script):
    import subprocess
    out = subprocess.run([sys.executable, str(_common.BENCH / script), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--against" in out.stdout, out.stderr


def test_each_console_tree_runs_from_bytecode_as_an_installed_copy_does(tmp_path, capsys, monkeypatch):
    """Where PYTHONDONTWRITEBYTECODE is set a tree never gets its .pyc: the
    sitting compiles each tree once, before the first run, so no run of
    the console pays for compiling its own source (Ansible's is compiled)."""
    for pkg in ("console", "strategies", "inventory"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "mod.py").write_text("X = 1\n")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    _common.compile_trees({"against": tmp_path})
    assert all(list((tmp_path / pkg / "__pycache__").glob("mod.*.pyc")) for pkg in ("console", "strategies", "inventory"))
    assert capsys.readouterr().out == ("console (against): bytecode compiled before the first run; "
                                       "PYTHONDONTWRITEBYTECODE=1 in this environment\n")
