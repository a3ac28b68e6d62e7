"""A real headless browser (Debian's chromium) with no network at all: it
runs in a network namespace of its own (`unshare -n`, root), so a page
that needed anything from outside would show it missing.

Development tooling: tests/test_report_browser.py and
tests/report_screenshot.py use it."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is not installed (tests/run.sh installs it: apt-get install chromium)"
    return path


def run(page: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """chromium --headless on a local page, offline; its stdout and stderr."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = ["unshare", "-n", chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", *flags,
               page.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def dump_dom(page: Path) -> str:
    """The page's DOM after load (and after its scripts ran)."""
    return run(page, "--dump-dom", "--virtual-time-budget=5000").stdout


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 2400) -> Path:
    # after the page settled (as dump_dom): a cold first start could shoot it before the SVGs were painted
    run(page, f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={out.resolve()}")
    assert out.is_file() and out.stat().st_size > 0
    return out
