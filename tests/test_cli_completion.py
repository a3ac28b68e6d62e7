"""`console completion bash|zsh|fish`: the scripts complete subcommands and
options in the real shells (bash and fish asked for completions; zsh,
which needs a terminal for that, parsed and checked for every subcommand)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent


def script(shell: str, tmp_path: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "console", "completion", shell], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    path = tmp_path / f"console.{shell}"
    path.write_text(proc.stdout)
    return path


def need(shell: str) -> str:
    path = shutil.which(shell)
    assert path, f"{shell} is not installed (apt-get install {shell})"
    return path


def bash_complete(path: Path, words: list[str]) -> list[str]:
    line = " ".join(words)
    code = (f"source {path}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
            f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
            f"_shtab_console console {words[-1]!r} {words[-2]!r}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    proc = subprocess.run([need("bash"), "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completes_subcommands_and_their_options(tmp_path):
    path = script("bash", tmp_path)
    assert bash_complete(path, ["console", "st"]) == ["status"]
    assert sorted(bash_complete(path, ["console", "lock", ""])) == ["release", "status"]
    assert "--watch" in bash_complete(path, ["console", "status", "--"])
    assert "--release" in bash_complete(path, ["console", "--"])
    everything = bash_complete(path, ["console", ""])
    assert set(SUBCOMMANDS) <= set(everything)


def test_fish_completes_subcommands_and_their_options(tmp_path):
    path = script("fish", tmp_path)

    def complete(line: str) -> list[str]:
        proc = subprocess.run([need("fish"), "-c", f"source {path}; complete -C '{line}'"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [row.split("\t")[0] for row in proc.stdout.splitlines()]

    assert complete("console st") == ["status"]
    assert sorted(complete("console lock ")) == ["release", "status"]
    assert "--yes" in complete("console rollback --")
    assert set(SUBCOMMANDS) <= set(complete("console "))


def test_zsh_script_parses_and_names_every_subcommand(tmp_path):
    path = script("zsh", tmp_path)
    proc = subprocess.run([need("zsh"), "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.startswith("#compdef console")
    for name in SUBCOMMANDS:
        assert f"\n    {name}:'" in text, name


@pytest.mark.parametrize("shell", ["tcsh", "powershell"])
def test_other_shells_are_refused_in_one_line(shell):
    proc = subprocess.run([sys.executable, "-m", "console", "completion", shell], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
