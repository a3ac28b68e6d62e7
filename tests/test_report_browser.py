"""The HTML report opened in a real headless browser (chromium, offline):
every plot is laid out with its series drawn, and the page shows them.

Two looks: (1) a copy of the page with a probe script appended asks the
browser itself for each series' rendered bounding box and point count
(the report has no script of its own); (2) a screenshot of the page as it
is, whose pixels must carry the release's colour where the plots are."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from browser import dump_dom, screenshot
from console.journal import read_journal
from console.report import plots

ROOT = Path(__file__).resolve().parent.parent

PROBE = """<script>
const out = {figures: {}, series: {}};
for (const f of document.querySelectorAll('figure')) {
  const svg = f.querySelector('svg'); const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  out.figures[f.id] = {width: r.width, height: r.height};
}
for (const g of document.querySelectorAll('svg g[id]')) {
  const b = g.getBBox();
  const points = [...g.querySelectorAll('path')].map(p => p.getTotalLength() > 0 ?
      (p.getAttribute('d').match(/[ML]/g) || []).length : 0).reduce((a, n) => a + n, 0);
  out.series[g.id] = {width: b.width, height: b.height, points: points};
}
const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, Path]:
    """A bad canary's journal (a real SIMULATED run) and its HTML report."""
    tmp = tmp_path_factory.mktemp("report")
    journal = tmp / "canary-bad.jsonl"
    run = subprocess.run([sys.executable, "-m", "console", "--plan", "examples/canary.yaml", "--version", "2.1.0-bad",
                          "--headless", "--time-scale", "100", "--record", str(journal)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr
    html = tmp / "report.html"
    made = subprocess.run([sys.executable, "-m", "console", "report", str(journal), "--html", str(html)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    return journal, html


def test_the_page_needs_nothing_from_outside(page):
    _, html = page
    text = html.read_text()
    assert "<script" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", text)
    assert not re.search(r"url\(\s*['\"]?(?:https?:|//)|@import", text)


def test_every_plot_renders_its_series_in_a_real_browser(page, tmp_path):
    journal, html = page
    probed = tmp_path / "probed.html"
    probed.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = dump_dom(probed)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert set(probe["figures"]) == {"plot-error-rate", "plot-latency", "plot-split", "plot-versions"}
    for name, box in probe["figures"].items():
        assert box["width"] > 600 and box["height"] > 100, (name, box)

    events = read_journal(journal).events
    samples = [e for e in events if e.kind == "gate" and e.values]
    series = probe["series"]
    end = max(e.at for e in events)
    for metric in ("error_rate", "p95_latency"):
        axis = series[f"threshold-{metric}"]["width"]  # the threshold spans the whole time axis
        assert axis > 300, (metric, series[f"threshold-{metric}"])
        for side in ("release", "baseline"):
            drawn = series[f"{side}-{metric}"]
            # a vertex per recorded sample that has the value (the release's
            # latency is not judged while it warms up), spread over those
            # samples' share of the time axis
            key = metric if side == "release" else f"baseline_{metric}"
            valued = [e for e in samples if e.values.get(key) is not None]
            if not valued:  # this bad canary was stopped before its latency was judged: nothing to draw
                assert side == "release" and metric == "p95_latency" and drawn["points"] <= 1, (side, metric, drawn)
                continue
            assert drawn["points"] >= len(valued), (side, metric, drawn)
            expected = axis * (valued[-1].at - valued[0].at) / end
            assert abs(drawn["width"] - expected) <= 0.1 * expected + 8, (side, metric, drawn, expected)
    assert series["release-error_rate"]["height"] > 10  # the error rate climbed: not a flat line
    verdicts = [e for e in events if e.kind == "gate" and (e.final or e.verdict == "fail")]
    assert all(series[f"verdict-{n}"]["width"] > 0 for n in range(len(verdicts)))
    assert series["split-stable"]["height"] > 50 and series["split-canary"]["width"] > 0
    lanes = {gid.split("-")[1] + "-" + gid.split("-")[2] for gid in series if gid.startswith("version-")}
    assert lanes == {f"agent-{n:02d}" for n in range(1, 11)}


def release_pixels(png: Path) -> int:
    from PIL import Image

    image = Image.open(png).convert("RGB")
    release = tuple(int(plots.RELEASE[i:i + 2], 16) for i in (1, 3, 5))
    data = image.tobytes()  # RGB triples (getdata is deprecated in Pillow 13)
    pixels = (data[i:i + 3] for i in range(0, len(data), 3))
    return sum(1 for pixel in pixels if sum(abs(a - b) for a, b in zip(pixel, release)) < 40)


def test_a_screenshot_shows_the_plots(page, tmp_path):
    """The page as it is, against a copy whose release series are hidden:
    the screenshot must lose the release's line (other things on the page
    share its colour: the outcome, the fail marker)."""
    _, html = page
    hidden = tmp_path / "hidden.html"
    hidden.write_text(html.read_text().replace(
        "</head>", "<style>#release-error_rate, #release-p95_latency { display: none }</style></head>"))
    shown = release_pixels(screenshot(html, tmp_path / "report.png"))
    without = release_pixels(screenshot(hidden, tmp_path / "hidden.png"))
    assert shown - without > 100, (shown, without)
