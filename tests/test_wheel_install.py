"""A plain (non-editable) install works on its own: the wheel, built from the
package sources alone, installed into a fresh venv with its declared
dependencies, runs the demo from a directory that is not the repository.

Development tooling (screenshot scenes and their fixtures) lives under
tests/, so the wheel neither ships nor needs it. Slow (it installs the
dependencies from the package index, or pip's cache) but it is the only
test that sees the product the way a user installs it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SOURCES = ["pyproject.toml", "README.md", "console", "inventory", "strategies"]

IMPORT_ALL = """
import importlib, pkgutil
names = []
for top in ("console", "inventory", "strategies"):
    package = importlib.import_module(top)
    names.append(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.isidentifier() and leaf != "__main__":
            importlib.import_module(info.name)
            names.append(info.name)
print(package.__file__)
print(len(names))
"""


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd, env=env)
    assert result.returncode == 0, f"{cmd[:3]} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def test_wheel_installs_into_a_fresh_venv_and_runs_the_demo_outside_the_repo(tmp_path: Path) -> None:
    # Build from a copy holding only what the package is made of: the
    # build must not need tests/ (and must not litter the worktree).
    src = tmp_path / "src"
    src.mkdir()
    for name in PACKAGE_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)])
    wheel = next(dist.glob("rollout_console-*.whl"))

    files = zipfile.ZipFile(wheel).namelist()
    assert not [f for f in files if f.startswith("tests/") or f.endswith(("scenarios.py", "screenshots.py"))]
    assert "inventory/fleets/default.yaml" in files  # the demo's embedded fleet is package data

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)])

    # Outside the repository, with nothing of it on the path.
    work = tmp_path / "elsewhere"
    (work / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "rolling.yaml", work / "examples" / "rolling.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"), NO_COLOR="1")

    imported = _run([str(venv / "bin" / "python"), "-c", IMPORT_ALL], cwd=work, env=env).stdout.split()
    assert imported[0].startswith(str(venv))  # the installed copy, not the repository's
    assert int(imported[1]) > 30  # every module of the three packages imports

    demo = subprocess.run(
        [str(venv / "bin" / "console"), "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "100"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-4000:]
    lines = demo.stdout.splitlines()
    assert lines and all(line.startswith("SIMULATED") for line in lines[:-1])
    assert lines[-1].startswith("result: succeeded (exit 0)")
    assert "SIMULATED" in demo.stdout and str(tmp_path / "state") in lines[-1]
