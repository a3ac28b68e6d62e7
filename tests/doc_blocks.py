"""The shell blocks of README.md and docs/*.md, by what they need to run.

A fenced block's info string says how it is run (tests/test_doc_blocks.py,
tests/sandbox/test_doc_blocks_real.py):

    ```sh           the embedded SIMULATED fleet, in a scratch directory with a
                    copy of examples/; a line whose comment says `# exit N` must
                    end with exit N, every other line with 0
    ```sh tui       a TUI command: run in a real terminal (tmux) until its
                    RESULT banner, then `q`; exit 0
    ```sh sandbox   real hosts (root): the sandbox lane runs it on its own fleet
    ```sh suite     the whole test suite (README command 2): .ci/run must run
                    exactly it; running it from a test would recurse

Any other block that looks like shell (info string sh, bash, shell or
console, or no info string and a line starting with `console ` or `$ `) is
an error: it would go unchecked, and stale.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"sh": "sim", "sh tui": "tui", "sh sandbox": "sandbox", "sh suite": "suite"}
SHELLISH = re.compile(r"^(sh|bash|shell|console)\b")
FENCE = re.compile(r"^```(.*)$")
EXPECTED_EXIT = re.compile(r"#.*\bexit (\d+)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    kind: str  # sim, tui, sandbox, suite; "" for a shell-looking block nobody runs
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[tuple[int, str, int]]:
        """(line number, command, expected exit code) for each command:
        continuation lines joined, comment-only and blank lines dropped."""
        out: list[tuple[int, str, int]] = []
        pending, start = "", 0
        for n, raw in enumerate(self.text.splitlines(), self.line + 1):
            if not pending:
                start = n
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            command = (pending + raw).strip()
            pending = ""
            if not command or command.startswith("#"):
                continue
            m = EXPECTED_EXIT.search(command)
            out.append((start, command, int(m.group(1)) if m else 0))
        return out

    def script(self, skip: Callable[[str], bool] = lambda _: False,
               rewrite: Callable[[str], str] = lambda c: c) -> str:
        """The block as one bash script, each command checked for its exit
        code. A job the block started in the background (a load loop) is
        killed when the script ends however it ends: left running, it would
        hold the test's output pipe open until the test's timeout."""
        out = ["set -u", "trap 'kill $(jobs -p) 2>/dev/null' EXIT"]
        for line, command, code in self.commands():
            if skip(command):
                continue
            command = rewrite(command)
            out.append(command)
            out.append(f'rc=$?; if [ $rc -ne {code} ]; then echo "{self.path.name}:{line}: exit $rc, expected {code}: "'
                       f"{shlex.quote(command)} >&2; exit 97; fi")
        return "\n".join(out) + "\n"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(paths: list[Path] | None = None) -> list[Block]:
    found: list[Block] = []
    for path in paths or doc_files():
        lines = path.read_text().splitlines()
        n = 0
        while n < len(lines):
            m = FENCE.match(lines[n])
            if not m:
                n += 1
                continue
            info, start = m.group(1).strip(), n + 1
            end = next((k for k in range(n + 1, len(lines)) if lines[k].strip() == "```"), len(lines))
            text = "\n".join(lines[n + 1:end])
            looks_like_shell = bool(SHELLISH.match(info)) or (
                not info and any(t.startswith(("console ", "$ ")) for t in text.splitlines()))
            if info in KINDS or looks_like_shell:
                found.append(Block(path, start, KINDS.get(info, ""), info, text))
            n = end + 1
    return found
