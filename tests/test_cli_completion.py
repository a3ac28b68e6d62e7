"""`console completion bash|zsh|fish`: the scripts complete subcommands and
options in the real shells (bash and fish asked for completions; zsh,
which completes only in a terminal, typed into an interactive zsh in tmux
with Tab pressed, and its screen read)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


class Zsh:
    """An interactive zsh (no user rc files: its own ZDOTDIR) in a tmux pane
    on a private tmux server, with the script installed as a user would:
    `_console` in a directory on fpath, then compinit."""

    def __init__(self, script: Path, home: Path) -> None:
        (home / "zfunc").mkdir()
        shutil.copy(script, home / "zfunc" / "_console")
        (home / ".zshrc").write_text(f"fpath=({home / 'zfunc'} $fpath)\n"
                                     f"autoload -Uz compinit && compinit -u -d {home / '.zcompdump'}\n"
                                     "PS1='READY> '\n")
        self.tmux = [need("tmux"), "-L", f"rc-zsh-{os.getpid()}", "-f", "/dev/null"]
        env = f"env -i HOME={home} ZDOTDIR={home} TERM=xterm PATH=/usr/bin:/bin"
        subprocess.run([*self.tmux, "new-session", "-d", "-x", "200", "-y", "50", "-c", str(ROOT),
                        f"{env} {need('zsh')} -i"], check=True, timeout=30)
        self.screen_shows(lambda screen: "READY>" in screen, "the prompt")

    def screen(self) -> str:
        """The pane's text (tmux drops each line's trailing blanks)."""
        return subprocess.run([*self.tmux, "capture-pane", "-p"], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def screen_shows(self, predicate, what: str, timeout: float = 30.0) -> str:
        """The screen once `predicate` holds (zsh draws when it is ready)."""
        end = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            assert time.monotonic() < end, f"zsh never showed {what}; the screen:\n{screen}"
            time.sleep(0.05)

    def tab(self, typed: str, predicate, what: str) -> str:
        """Clear the line, type `typed`, press Tab; the screen once it shows `what`."""
        subprocess.run([*self.tmux, "send-keys", "C-u", typed, "Tab"], check=True, timeout=30)
        return self.screen_shows(predicate, what)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=30)


def test_zsh_completes_subcommands_options_and_files_in_a_terminal(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    zsh = Zsh(script("zsh", tmp_path), home)
    try:
        zsh.tab("console st", lambda s: "READY> console status\n" in s, "`status` completed")
        listed = zsh.tab("console lock ", lambda s: "\nstatus " in s, "the lock subcommands listed")
        assert "\nrelease " in listed and "-- Who holds the plan's rollout lock" in listed
        options = zsh.tab("console status --", lambda s: "\n--watch " in s, "the status options listed")
        assert "\n--all " in options and "-- follow the runs: a line per change" in options
        zsh.tab("console --plan examples/canary-man", lambda s: "examples/canary-manual.yaml\n" in s,
                "the plan's file completed")
        every = zsh.tab("console ", lambda s: "\nversion " in s, "every subcommand listed")
        assert all(f"\n{name} " in every for name in SUBCOMMANDS), every
    finally:
        zsh.close()


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
