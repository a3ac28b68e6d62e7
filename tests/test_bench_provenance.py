"""Every benchmark run says what it measured: bench/_common.start prints the
commit, dirty state, machine and UTC date, and keeps the run's raw output
in bench/results/<date>-<commit>/<name>.txt."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
sys.path.insert(0, "bench")
from _common import start
start("probe")
print("figure 1.23 s")
print("a warning", file=sys.stderr)
"""


def test_start_prints_provenance_and_keeps_the_raw_output(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ROLLOUT_BENCH_RESULTS": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    folder = tmp_path / f"{dt.datetime.now(dt.UTC):%Y-%m-%d}-{commit}"
    assert sorted(p.name for p in folder.iterdir()) == ["probe-2.txt", "probe.txt"]  # a re-run keeps the first
    raw = (folder / "probe.txt").read_text()
    header = runs[0].stdout.splitlines()
    assert header[0].startswith("# probe  ") and header[0].endswith(" UTC")
    assert header[1].startswith(f"# commit {commit} (") and ("clean" in header[1] or "DIRTY" in header[1])
    assert header[2].startswith("# machine: Linux ") and "nproc " in header[3]
    assert raw == runs[0].stdout + "a warning\n"  # stdout and stderr, as printed
    assert "figure 1.23 s" in raw


def test_raw_results_are_kept_small_and_read_in_either_form(tmp_path):
    """bench/results keeps journals, event streams and logs over 16 KB
    gzipped (a fresh clone carried 19 MB of them); the readers take either form."""
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import keep_compressed, read_text, should_compress
    big = [p.relative_to(ROOT) for p in (ROOT / "bench" / "results").rglob("*") if p.is_file() and should_compress(p)]
    assert big == [], f"compress these (bench/_common.py: keep_compressed): {big[:5]}"
    raw = tmp_path / "run.journal.jsonl"
    raw.write_text('{"seq": 1}\n' * 5000)
    assert should_compress(raw)
    assert read_text(raw) == '{"seq": 1}\n' * 5000
    gz = keep_compressed(raw)
    assert not raw.exists() and gz.name == "run.journal.jsonl.gz" and gz.stat().st_size < 1000
    assert read_text(raw) == '{"seq": 1}\n' * 5000
    assert gz.read_bytes() == keep_compressed(_rewrite(raw)).read_bytes()  # the same bytes: the same blob


def _rewrite(path):
    path.write_text('{"seq": 1}\n' * 5000)
    return path
