"""The CLI explains itself: `console` alone, `--help`, `help SUB`, the
tool's version, the release flag's two spellings, help text on every
option of every parser, and --yes wherever a command asks for
confirmation. Real `python -m console` processes, except the parser walk."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import SUBCOMMANDS, parser_of
from console.cli_run import parser_run
from console.exitcodes import Exit
from console.version import tool_version

ROOT = Path(__file__).resolve().parent.parent
LIVE_VERBS = ("status", "attach", "pause", "resume", "promote", "rollback", "abort")
ASKED = ("check", "sandbox", "replay", "audit", "recommend")  # issue 24 names these too


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_console_alone_is_an_overview_of_every_subcommand():
    proc = run()
    assert proc.returncode == 0 and proc.stderr == ""
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in proc.stdout, name
    assert "--plan FILE" in proc.stdout and len(proc.stdout.splitlines()) < 40


def test_help_lists_every_subcommand_in_one_line_exit_codes_and_three_examples():
    proc = run("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    subs = out.split("\nsubcommands (")[1].split("exit codes:")[0]
    for name in (*LIVE_VERBS, *ASKED, *SUBCOMMANDS):
        lines = [line for line in subs.splitlines() if line.split()[:1] == [name]]
        assert len(lines) == 1, name
    codes = out.split("exit codes:\n")[1].split("\n\n")[0].splitlines()
    assert [int(line.split()[0]) for line in codes] == [int(c) for c in Exit]
    examples = out.split("examples:\n")[1].strip().splitlines()
    assert len(examples) == 3 and all(e.strip().startswith("console ") for e in examples)
    assert "--release VERSION" in out and "--version VALUE" in out  # the rule in words


def test_help_anywhere_before_a_subcommand_is_the_full_help():
    assert "exit codes:" in run("--plan", "x.yaml", "--help").stdout


@pytest.mark.parametrize("args", [["version"], ["-V"], ["--version"], ["--plan", "p.yaml", "--version"],
                                  ["check", "--version"]])
def test_the_tools_own_version(args):
    proc = run(*args)
    assert proc.returncode == 0 and proc.stdout.strip() == f"console {tool_version()}", proc.stderr


@pytest.mark.parametrize("flag", [["--release", "3.1.4"], ["--version", "3.1.4"], ["--version=3.1.4"]])
def test_release_flag_and_its_old_spelling_ship_that_release(flag):
    proc = run("--plan", "examples/rolling.yaml", *flag, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "install-release --slot main 3.1.4" in proc.stdout


def test_help_of_a_subcommand_through_help():
    proc = run("help", "lock")
    assert proc.returncode == 0 and "usage: console lock" in proc.stdout


def test_resume_help_shows_its_argument_optional():
    out = run("resume", "--help").stdout
    usage = out.split("\n\n")[0]
    assert "[JOURNAL|RUN]" in usage and "required" not in out


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = [("console", parser_run())]
    todo = [(name, parser_of(name)) for name in SUBCOMMANDS]
    while todo:
        name, p = todo.pop()
        found.append((name, p))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend((f"{name} {child}", sub) for child, sub in action.choices.items())
    return found


def test_every_option_and_argument_of_every_parser_has_help():
    missing = [f"{name}: {'/'.join(a.option_strings) or a.dest}" for name, p in _parsers() for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()]
    assert missing == []
    assert len(_parsers()) > len(SUBCOMMANDS)  # subparsers (sandbox up, lock release, ...) were walked too


def test_every_command_that_asks_for_confirmation_takes_yes():
    # the commands whose code calls input() for a yes/no: rollback and abort of a live run,
    # rollback of a finished one, lock release, init over an existing file
    for name in ("rollback", "abort", "init"):
        assert "--yes" in parser_of(name).format_help(), name
    lock = next(p for n, p in _parsers() if n == "lock release")
    assert "--yes" in lock.format_help()


def test_unknown_subcommand_like_word_is_a_one_line_error():
    proc = run("stauts")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_a_subcommand_added_as_a_plain_function_is_dispatched_listed_and_completed(monkeypatch, capsys):
    """Other branches add their subcommand as one line, `"name": module.main`."""
    import console.cli as cli

    seen = []

    def main(argv):
        """count the arguments it was given"""
        seen.append(list(argv))
        return 0

    monkeypatch.setitem(cli.SUBCOMMANDS, "count", main)
    assert cli.main(["count", "a", "b"]) == 0 and seen == [["a", "b"]]
    assert cli.main([]) == 0
    assert "  count       count the arguments it was given" in capsys.readouterr().out
    from console.cli_completion import command_tree

    assert "count" in next(a for a in command_tree()._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_a_subcommand_by_module_reference_is_imported_only_when_run(monkeypatch, tmp_path, capsys):
    """`"name": Sub("module", "", "summary")`: the module's `main` and `parser`."""
    import console.cli as cli

    (tmp_path / "late_cli.py").write_text(
        "import argparse\nLOADED = True\n"
        "def parser():\n    p = argparse.ArgumentParser(prog='console late')\n"
        "    p.add_argument('--n', type=int, default=1, help='how many')\n    return p\n"
        "def main(argv):\n    print('late', parser().parse_args(argv).n)\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.SUBCOMMANDS, "late", cli.Sub("late_cli", "", "a late subcommand"))
    assert cli.main([]) == 0 and "late_cli" not in sys.modules  # listed without importing it
    assert "  late        a late subcommand" in capsys.readouterr().out
    assert cli.main(["late", "--n", "3"]) == 0 and capsys.readouterr().out == "late 3\n"
    assert "--n" in cli.parser_of("late").format_help()
    del sys.modules["late_cli"]
