#!/usr/bin/env python3
"""Render every table of figures in bench/RESULTS.md, bench/SOAK.md and docs/judge.md from
the raw files under bench/results (issue 26: figures generated, not typed).

A document marks each generated table with a pair of comments naming a
block of BLOCKS:

    <!-- figures: vs-ansible-50-0d59498 -->
    ...(this script's output)...
    <!-- /figures -->

`python3 bench/render_figures.py` rewrites the blocks in place;
`--check` changes nothing and exits 1 naming every block that differs
(tests/test_render_figures.py runs it). Prose around the blocks is the
author's; a figure with no raw file has no block, and is not given.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, ROOT, read_text  # noqa: E402

RESULTS = BENCH / "results"
DOCS = [BENCH / "RESULTS.md", BENCH / "SOAK.md", ROOT / "docs" / "judge.md"]
MARK = re.compile(r"(<!-- figures: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


# -- reading raw files ----------------------------------------------------------------------------------

def raw(rel: str) -> str:
    return read_text(RESULTS / rel)


def provenance(rel: str) -> str:
    """One line: the file, its commit, date, CPU, load at start and command
    (from the header bench/_common.start printed)."""
    text = raw(rel)
    date = re.search(r"^# \S+\s+(\d{4}-\d\d-\d\d \d\d:\d\d)", text, re.M)
    commit = re.search(r"^# commit (\w+) \((\w+)", text, re.M)
    machine = re.search(r"^# nproc (\d+), RAM [^,]+, kernel [^,]+, ([^,]+), Python [^,]+, load avg at start ([\d.]+)",
                        text, re.M)
    command = re.search(r"^# command: (.*)$", text, re.M)
    assert date and commit and machine and command, f"{rel}: no provenance header"
    return (f"`bench/results/{rel}`: commit {commit[1]} ({commit[2]}), {date[1]} UTC, {machine[2]} "
            f"({machine[1]} cores), load {machine[3]} at start; `{command[1]}`")


def printed_tables(rel: str) -> str:
    """The markdown tables the benchmark printed, verbatim."""
    lines = [x for x in raw(rel).splitlines() if x.startswith("|")]
    assert lines, f"{rel}: no table"
    return "\n".join(_split_tables(lines))


def _split_tables(lines: list[str]) -> list[str]:
    """A table starts where a separator row follows a header: put a blank
    line before each header but the first."""
    out: list[str] = []
    for i, line in enumerate(lines):
        starts = i + 1 < len(lines) and re.fullmatch(r"\|[-| ]+\|", lines[i + 1]) is not None
        if starts and out:
            out.append("")
        out.append(line)
    return out


def printed_section(rel: str, heading: str) -> str:
    """The table the benchmark printed under `## heading`, verbatim."""
    section = raw(rel).split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [x for x in section.splitlines() if x.startswith("|")]
    assert lines, f"{rel}: no table under {heading}"
    return "\n".join(lines)


def printed_summary(rel: str) -> str:
    """`N hosts:` sections of indented `measure  value` lines (tui_bench,
    tui_tmux) as one table."""
    rows, hosts = [], None
    for line in raw(rel).splitlines():
        m = re.fullmatch(r"(\d+) hosts:", line.strip()) if not line.startswith("  ") else None
        if m:
            hosts = int(m[1])
            continue
        m = re.fullmatch(r"  (\S.*?)\s{2,}(\S.*)", line)
        if hosts is not None and m and ("n=" in m[2] or "runs" in m[2]):
            rows.append(f"| {hosts:,} | {m[1]} | {m[2]} |")
    assert rows, f"{rel}: no summary lines"
    return "\n".join(["| hosts | measure | median (min-max, n) |", "| ---: | --- | --- |", *rows])


def printed_ratios(rel: str) -> str:
    """The ratio lines a `--against` sitting printed (bench/tui_tmux.py):
    one row per size, one column per measure."""
    rows = re.findall(r"^  (\d+) hosts: (.*)$", raw(rel).split("ratio of the medians", 1)[1], re.M)
    assert rows, f"{rel}: no ratio lines"
    names = [cell.rsplit(" ", 1)[0] for cell in rows[0][1].split("; ")]
    lines = ["| hosts | " + " | ".join(names) + " |", "| ---: |" + " ---: |" * len(names)]
    for hosts, cells in rows:
        lines.append(f"| {int(hosts):,} | " + " | ".join(c.rsplit(" ", 1)[1] for c in cells.split("; ")) + " |")
    return "\n".join(lines)


def fmt(values: list[float], unit: str = "s", digits: int = 2) -> str:
    v = sorted(values)
    if not v:
        return "n/a"
    med = f"{statistics.median(v):.{digits}f} {unit}"
    return f"{med} (n=1)" if len(v) == 1 else f"{med} ({v[0]:.{digits}f}-{v[-1]:.{digits}f}, n={len(v)})"


RUN_LINE = re.compile(r"round (\d+) (console@against|console|ansible)\s+wall ([\d.]+)s cpu [\d.]+s rc (\S+)"
                      r"(?: load avg ([\d.]+))?")


def vs_ansible_runs(rel: str) -> list[dict]:
    """One record per round of a bench/vs_ansible.py sitting: the order its
    runs went in, each run's wall and whether it succeeded, the console's
    start-up + exit (the breakdown line under its run line), the load
    average as each run began (when printed) and the round's inherent
    service time."""
    rounds: dict[int, dict] = {}
    last: dict | None = None
    for line in raw(rel).splitlines():
        m = RUN_LINE.match(line)
        if m:
            r = rounds.setdefault(int(m[1]), {"round": int(m[1]), "order": []})
            r["order"].append(m[2])
            last = r[m[2]] = {"wall": float(m[3]), "ok": m[4] == "0", "load": float(m[5]) if m[5] else None}
            continue
        m = re.match(r"  wall [\d.]+, start-up \+ exit ([\d.]+)", line)
        if m and last is not None:
            last["startup"] = float(m[1])
        m = re.match(r"round (\d+) baseline inherent ([\d.]+)s", line)
        if m:
            rounds[int(m[1])]["inherent"] = float(m[2])
    assert rounds, f"{rel}: no rounds"
    return [rounds[n] for n in sorted(rounds)]


def vs_ansible_rounds(rels: list[str]) -> str:
    """Per round of one sitting (the files of one commit, one machine):
    the console's wall with its start-up + exit apart, Ansible's wall, and
    Ansible / console from the same round only."""
    console: list[tuple[float, float]] = []
    ansible: list[float] = []
    for rel in rels:
        for r in vs_ansible_runs(rel):
            assert "startup" in r["console"], f"{rel}: round {r['round']}: a console run without its breakdown"
            console.append((r["console"]["wall"], r["console"]["startup"]))
            ansible.append(r["ansible"]["wall"])
    rows = [
        ("console wall", fmt([w for w, _ in console])),
        ("of which start-up + exit (imports, reading plan and inventory)", fmt([s for _, s in console])),
        ("console wall without start-up + exit", fmt([w - s for w, s in console])),
        ("Ansible wall (its own start-up included: not separable)", fmt(ansible)),
        ("Ansible / console, each round against its own", fmt([a / w for a, (w, _) in zip(ansible, console)], "x")),
    ]
    return "\n".join(["| measure | median (min-max, n rounds) |", "| --- | --- |",
                      *(f"| {k} | {v} |" for k, v in rows)])


def vs_ansible_per_round(rel: str) -> str:
    """Every round of a sitting, not only the medians: the order the runs
    went in, each run's wall (the console's start-up + exit in brackets),
    Ansible / console and, with --against, this tree / that tree, both from
    that round alone; a failed run is named, not timed."""
    runs = vs_ansible_runs(rel)
    against = any("console@against" in r for r in runs)
    loads = any(r[t].get("load") is not None for r in runs for t in r["order"])

    def wall(run: dict | None) -> str:
        if run is None or not run["ok"]:
            return "failed"
        return f"{run['wall']:.2f} s" + (f" ({run['startup']:.2f})" if "startup" in run else "")

    def ratio(a: dict | None, b: dict | None) -> str:
        return f"{a['wall'] / b['wall']:.2f} x" if a and b and a["ok"] and b["ok"] else "n/a"

    head = ["round", "order", "console (start-up + exit)"] + (["console, --against tree"] if against else []) + \
        ["Ansible", "Ansible / console"] + (["this / against"] if against else []) + ["inherent"] + \
        (["load avg at each run's start"] if loads else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    names = {"console": "this", "console@against": "against", "ansible": "Ansible"}
    for r in runs:
        cells = [str(r["round"]), ", ".join(names[t] for t in r["order"]), wall(r.get("console"))]
        if against:
            cells.append(wall(r.get("console@against")))
        cells += [wall(r.get("ansible")), ratio(r.get("ansible"), r.get("console"))]
        if against:
            cells.append(ratio(r.get("console"), r.get("console@against")))
        cells.append(f"{r['inherent']:.2f} s" if "inherent" in r else "n/a")
        if loads:
            cells.append(", ".join(f"{r[t]['load']:.1f}" for t in r["order"] if r[t].get("load") is not None))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def vs_ansible_tables(rel: str) -> str:
    """The tables a vs_ansible sitting printed, each under the tree it is
    about (with --against there are two, alike but for that): this tree,
    or the --against tree by its commit, then the before/after line."""
    text = raw(rel)
    against = re.search(r"^console \(against\) from \S+ at commit (\w+)", text, re.M)
    names = {"console": "This tree", "console@against": f"The --against tree ({against[1] if against else '?'})"}
    out: list[str] = []
    table: list[str] = []
    for line in [*text.splitlines(), ""]:
        m = re.fullmatch(r"(console(?:@against)?):", line)
        if m:
            out.append(f"{names[m[1]]} against Ansible, the same rounds:")
        elif line.startswith("|"):
            table.append(line)
        elif table:
            out.append("\n".join(table))
            table = []
        if line.startswith("this / against, console wall:"):
            out.append(line.replace("this / against", "This tree / the --against tree", 1) + ".")
    assert out, f"{rel}: no table"
    return "\n\n".join(out)


def vs_ansible_breakdown(rel: str) -> str:
    """Where the console's wall time went in a sitting, per tree: the
    median of each term its runs' own events give (vs_ansible.breakdown,
    printed under each tree's table), the nginx changes also by step."""
    terms: dict[str, dict[str, str]] = {}
    runs: dict[str, str] = {}
    label, inside = "console", False
    for line in raw(rel).splitlines():
        m = re.fullmatch(r"(console(?:@against)?):", line)
        if m:
            label = m[1]
            continue
        m = re.fullmatch(r"console wall time, where it goes \(median of (\d+) run\(s\), seconds\):", line)
        if m:
            inside, runs[label] = True, m[1]
            continue
        m = re.fullmatch(r"  (  )?(\S.*?)\s{2,}([\d.]+)(.*)", line) if inside else None
        if m:
            name = ("nginx step: " if m[1] else "") + m[2].replace("|", "\\|")  # a cell of a markdown table
            terms.setdefault(name, {})[label] = m[3] + (f" {m[4].strip()}" if m[4].strip() else "")
    assert terms, f"{rel}: no breakdown"
    names = {"console": "this tree", "console@against": "the --against tree"}
    head = ["term (seconds, median)"] + [f"{names[t]} (n={n})" for t, n in runs.items()]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join([name] + [by.get(t, "") for t in runs]) + " |" for name, by in terms.items()]
    return "\n".join(lines)


def vs_ansible_sitting(rel: str) -> str:
    """A whole vs_ansible sitting: where it ran, its tables by tree, every
    round, and where the console's time went."""
    return "\n\n".join([provenance(rel), vs_ansible_tables(rel), vs_ansible_per_round(rel), vs_ansible_breakdown(rel)])


def fleet_scale_growth(rel: str, fixed_rel: str) -> str:
    """Growth for 10x the hosts, with the fixed start-up apart: the wall of
    `console --dry-run` at the same commit (imports, reading plan and
    inventory: paid once whatever the size) is subtracted before the ratio
    is taken."""
    runs: dict[tuple[str, int], list[float]] = {}
    for strategy, hosts, wall in re.findall(r"^(\w+)\s+(\d+) run \d+: wall ([\d.]+)s", raw(rel), re.M):
        runs.setdefault((strategy, int(hosts)), []).append(float(wall))
    fixed = re.search(r"^\| console --dry-run[^|]*\| ([\d.]+) ms", raw(fixed_rel), re.M)
    assert fixed, f"{fixed_rel}: no dry-run"
    base = float(fixed[1]) / 1000
    lines = [f"Start-up subtracted: {base:.2f} s (`console --dry-run`, median, `bench/results/{fixed_rel}`).", "",
             "| strategy | hosts | wall, median | wall less start-up | growth for 10x the hosts, wall "
             "| growth, start-up apart |", "| --- | ---: | --- | --- | --- | --- |"]
    for (strategy, hosts), walls in sorted(runs.items()):
        med = statistics.median(walls)
        smaller = runs.get((strategy, hosts // 10))
        growth = apart = ""
        if smaller:
            small = statistics.median(smaller)
            growth, apart = f"x{med / small:.1f}", f"x{(med - base) / (small - base):.1f}"
        lines.append(f"| {strategy} | {hosts:,} | {fmt(walls)} | {med - base:.2f} s | {growth} | {apart} |")
    return "\n".join(lines)


def soak_files() -> list[Path]:
    """Every soak's runs.jsonl (kept gzipped when large: read_text finds it)."""
    return sorted({p.with_name("runs.jsonl") for p in RESULTS.rglob("runs.jsonl*")})


def soak_totals() -> str:
    """One row per soak record: commit, rollouts, faults, requests, runs
    flagged then, runs flagged by today's rules (soak_rules.recheck) and
    runs whose record cannot decide an excuse."""
    import json

    from soak_rules import recheck
    lines = ["| runs.jsonl | commit | seed | rollouts | faults injected (never came) | client requests "
             "| runs flagged then | flagged by today's rules | of them: sent < 90 % | undecidable from the record |",
             "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for path in soak_files():
        records = [json.loads(x) for x in read_text(path).splitlines()]
        judged = [recheck(r) for r in records]
        fired = sum(len(r["outcome"]["fired"]) for r in records)
        scheduled = sum(len(r["schedule"]["faults"]) for r in records)
        lines.append(
            f"| {path.parent.relative_to(RESULTS)} | {', '.join(sorted({r.get('commit', '?') for r in records}))} "
            f"| {', '.join(sorted({str(r['schedule']['seed']) for r in records}))} | {len(records)} "
            f"| {fired} ({scheduled - fired}) | {sum(r['outcome']['clients']['sent'] for r in records):,} "
            f"| {sum(bool(r['violations']) for r in records)} | {sum(bool(f) for f, _ in judged)} "
            f"| {sum(any(x.startswith('sent') for x in f) for f, _ in judged)} | {sum(bool(u) for _, u in judged)} |")
    return "\n".join(lines)


# The harder soak of issue 26 (seed 9), one record per commit it ran at.
HARDER_SOAKS = {commit: [f"2026-12-06-{commit}-soak/{net}/runs.jsonl" for net in ("net6", "net8")]
                for commit in ("f47952b", "539650a", "b0fb389", "d93ce09")}


# The longer soak after the seed-9 cases were placed: seeds 10-11 at 597799e (stopped once its runs showed
# the drain's fault, fixed in 32f23ee), then seeds 12-13 at 32f23ee.
LONG_SOAKS = {f"{commit} (seeds {seeds})": [f"2026-12-06-{commit}-soak/{net}/runs.jsonl" for net in ("net5", "net6")]
              for commit, seeds in (("597799e", "10, 11"), ("32f23ee", "12, 13"))}


# The soaks after the tests' load generator moved from httpx to h11 (tests/load.py): seeds 14 and 15,
# then seed 16 after seed 15 run 34's fix.
LEAN_SOAKS = {"0ffdee9 (seeds 14, 15)": ["2026-12-07-0ffdee9-soak/net8/runs.jsonl"],
              "fbff56e (seed 16)": ["2026-12-07-fbff56e-soak/net8/runs.jsonl"]}

# Issue 26's long soak at one product tree, side by side on nets 5-9 (a seed each): aec158f (stopped after
# its first two violations, each fixed), then f6db700, whose soak restarted at 0abd4e9 once the soak's own
# check was fixed (`git diff f6db700 0abd4e9 -- console strategies inventory sandbox` is empty).
ONE_COMMIT_SOAKS = {
    "aec158f (seeds 17-20)": [f"2026-12-07-aec158f-soak/net{n}/runs.jsonl" for n in (5, 6, 7, 8)],
    "f6db700 = 0abd4e9 (seeds 21-25)": [f"2026-12-07-{commit}-soak/net{n}/runs.jsonl"
                                        for commit, nets in (("f6db700", (5, 6, 7, 8)), ("0abd4e9", (5, 6, 7, 8, 9)))
                                        for n in nets],
}

# Issue 26's 1,000 rollouts at one commit, five fleets side by side (nets 5-9, a seed each): 73edc22 stopped
# after its first two violations (seed 26 run 55, seed 30 run 58: product faults, fixed in c315ade and 69cb3be),
# c315ade after 45 runs for the second fix, then 69cb3be, whose fleets went on at 7580605 and 2578132 after two
# fixes of the soak itself (`git diff 69cb3be c46386f -- console strategies inventory sandbox` is empty).
THOUSAND = "69cb3be = c46386f (seeds 36-43)"


def soak_dirs(folder: str) -> list[str]:
    """The runs.jsonl of each fleet's directory in one soak's folder (net5..., and net7-seed41...: a
    fleet whose seed was done took a new one)."""
    return sorted({str(p.with_name("runs.jsonl").relative_to(RESULTS))
                   for p in (RESULTS / folder).glob("net*/runs.jsonl*")}, key=lambda r: (len(r), r))


THOUSAND_SOAKS = {label: soak_dirs(f"2026-12-07-{commit}-soak")
                  for label, commit in (("73edc22 (seeds 26-30)", "73edc22"), ("c315ade (seeds 31-35)", "c315ade"),
                                        (THOUSAND, "69cb3be"))}


def soak_sent_shares(soaks: dict[str, list[str]]) -> str:
    """Per soak: runs, the load average at its start (its soak.txt headers),
    and the share of due requests its generator sent (median, lowest, runs
    under 90 %)."""
    import json
    lines = ["| soak | generator | runs | load average at start | sent share: median | lowest | runs under 90 % |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for label, rels in soaks.items():
        shares = [json.loads(x)["outcome"]["clients"]["sent_share"] for rel in rels for x in raw(rel).splitlines()]
        loads = sorted({float(m) for rel in rels for m in re.findall(
            r"load avg at start ([\d.]+)", raw(str(Path(rel).parent / "soak.txt")))})
        generator = "httpx" if label in LONG_SOAKS else "h11"
        lines.append(f"| {label} | {generator} | {len(shares)} | {', '.join(f'{x:g}' for x in loads)} "
                     f"| {statistics.median(shares):.0%} | {min(shares):.0%} | {sum(x < 0.9 for x in shares)} |")
    return "\n".join(lines)


def soak_per_seed(rels: list[str]) -> str:
    """One soak at one tree, a row per fleet (seed) and their total: what it
    drew (strategies, bad releases, faults, two at once, operator commands,
    resumes), what clients sent and saw, and the runs flagged when they ran
    and by today's rules (soak_rules.recheck)."""
    import json

    from soak_rules import recheck
    lines = ["| seed (net) | rollouts | rolling / canary / blue-green | bad releases | faults fired (drawn) "
             "| two faults at once | operator commands | resumed | client requests | sent share: lowest "
             "| the bad release's own errors | set apart: in flight on a vanished host, LB outage, slow link, "
             "restarted unit | failed, nothing excuses | runs flagged | by today's rules |",
             "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    everything: list[dict] = []

    def row(label: str, records: list[dict]) -> str:
        strategies = [r["schedule"]["strategy"].split("/")[0] for r in records]
        drawn = [f for r in records for f in r["schedule"]["faults"] if not f["fault"].startswith("op_")]
        fired = [f for r in records for f in r["outcome"]["fired"] if not f.startswith("op_")]
        clients = [r["outcome"]["clients"] for r in records]
        apart = ", ".join(str(sum(c[k] for c in clients)) for k in ("in_flight_lost", "outage", "degraded_link",
                                                                     "restarted_unit"))
        return (f"| {label} | {len(records):,} | {strategies.count('rolling')} / {strategies.count('canary')} / "
                f"{strategies.count('blue_green')} | {sum(bool(r['schedule']['release']['bad']) for r in records)} "
                f"| {len(fired)} ({len(drawn)}) "
                f"| {sum(any(f.get('together') for f in r['schedule']['faults']) for r in records)} "
                f"| {sum(bool(r['outcome']['operator']) for r in records)} "
                f"| {sum(r['outcome']['resume_exit'] is not None for r in records)} "
                f"| {sum(c['sent'] for c in clients):,} | {min(c['sent_share'] for c in clients):.0%} "
                f"| {sum(c['own'] for c in clients):,} | {apart} | {sum(c['foreign'] for c in clients)} "
                f"| {sum(bool(r['violations']) for r in records)} "
                f"| {sum(bool(recheck(r)[0]) for r in records)} |")
    for rel in rels:
        records = [json.loads(x) for x in raw(rel).splitlines()]
        everything += records
        net = re.search(r"net(\d+)", rel)
        seeds = sorted({r["schedule"]["seed"] for r in records})
        lines.append(row(f"{', '.join(map(str, seeds))} ({net[1] if net else '?'})", records))
    lines.append(row("**all**", everything))
    return "\n".join(lines)


def soak_violation_kinds(soaks: dict[str, list[str]]) -> str:
    """Per soak (a label and its records), the runs each kind of violation
    flagged (numbers as N, hosts and quoted messages left out): which are
    the machine's (too few requests sent) and which the console's."""
    import json
    from collections import Counter
    counts: dict[str, Counter] = {}
    runs: Counter = Counter()
    for label, rels in soaks.items():
        counts[label] = Counter()
        for rel in rels:
            for line in raw(rel).splitlines():
                record = json.loads(line)
                runs[label] += 1
                counts[label].update({re.sub(r"\d+(\.\d+)?", "N", re.sub(r"'.*|\(.*", "", v.split(", e.g.")[0])).strip()
                                      for v in record["violations"]})
    kinds = sorted({k for c in counts.values() for k in c}, key=lambda k: (-sum(c[k] for c in counts.values()), k))
    head = "| violation (numbers as N) | " + " | ".join(f"{label} ({runs[label]} runs)" for label in soaks) + " |"
    rows = [f"| {k} | " + " | ".join(str(counts[label][k]) for label in soaks) + " |" for k in kinds]
    return "\n".join([head, "| --- |" + " ---: |" * len(soaks), *rows])


def soak_fault_table(rels: list[str]) -> str:
    """bench/soak.py's per-fault table over these soaks' records."""
    import soak
    runs = [run for rel in rels for run in soak.load_runs(RESULTS / rel)]
    return "\n".join(soak.table(runs))


BLOCKS: dict[str, Callable[[], str]] = {
    "vs-ansible-6-0d59498": lambda: "\n\n".join([provenance("2026-12-02-0d59498/vs_ansible.txt"),
                                                 printed_tables("2026-12-02-0d59498/vs_ansible.txt"),
                                                 vs_ansible_rounds(["2026-12-02-0d59498/vs_ansible.txt"])]),
    "vs-ansible-50-0d59498": lambda: "\n\n".join([provenance("2026-12-02-0d59498/vs_ansible-2.txt"),
                                                  printed_tables("2026-12-02-0d59498/vs_ansible-2.txt"),
                                                  vs_ansible_rounds(["2026-12-02-0d59498/vs_ansible-2.txt"])]),
    "vs-ansible-50-3743db8": lambda: "\n\n".join([
        provenance("2026-12-02-3743db8/vs_ansible-2.txt"), provenance("2026-12-02-3743db8/vs_ansible-3.txt"),
        vs_ansible_rounds(["2026-12-02-3743db8/vs_ansible-2.txt", "2026-12-02-3743db8/vs_ansible-3.txt"])]),
    "vs-ansible-50-f739717": lambda: vs_ansible_sitting("2026-12-06-f739717/vs_ansible.txt"),
    "vs-ansible-50-b5760ff": lambda: vs_ansible_sitting("2026-12-06-b5760ff/vs_ansible.txt"),
    "load-generator-hogs6": lambda: "\n\n".join([provenance("2026-12-07-4953d1c/load_generator.txt"),
                                                printed_tables("2026-12-07-4953d1c/load_generator.txt")]),
    "load-generator-hogs12": lambda: "\n\n".join([provenance("2026-12-07-4953d1c/load_generator-2.txt"),
                                                 printed_tables("2026-12-07-4953d1c/load_generator-2.txt")]),
    "probe-cost": lambda: "\n\n".join([provenance("2026-12-02-caf7311/probe_cost.txt"),
                                       printed_tables("2026-12-02-caf7311/probe_cost.txt")]),
    "fleet-scale": lambda: "\n\n".join([provenance("2026-12-02-3743db8/fleet_scale.txt"),
                                        printed_tables("2026-12-02-3743db8/fleet_scale.txt"),
                                        fleet_scale_growth("2026-12-02-3743db8/fleet_scale.txt",
                                                           "2026-12-02-3743db8/startup_and_journal.txt")]),
    "traffic-switch": lambda: "\n\n".join([provenance("2026-12-02-3743db8/traffic_switch.txt"),
                                           printed_tables("2026-12-02-3743db8/traffic_switch.txt")]),
    "startup-journal": lambda: "\n\n".join([provenance("2026-12-02-3743db8/startup_and_journal.txt"),
                                            printed_tables("2026-12-02-3743db8/startup_and_journal.txt")]),
    "tui-bench": lambda: "\n\n".join([provenance("2026-12-02-70a6fef/tui_bench.txt"),
                                      printed_summary("2026-12-02-70a6fef/tui_bench.txt")]),
    "tui-tmux": lambda: "\n\n".join([provenance("2026-12-02-088737e/tui_tmux.txt"),
                                     printed_summary("2026-12-02-088737e/tui_tmux.txt")]),
    "tui-tmux-key-bar-against": lambda: "\n\n".join([
        provenance(rel) + "\n\n" + printed_ratios(rel)
        for rel in ("2026-12-02-c23c0f2/tui_tmux.txt", "2026-12-02-c23c0f2/tui_tmux-2.txt")]),
    "judge-power": lambda: "\n\n".join([provenance("2026-12-02-3743db8/judge_power.txt"),
                                        printed_tables("2026-12-02-3743db8/judge_power.txt")]),
    "judge-power-df8b021": lambda: "\n\n".join([provenance("2026-12-06-df8b021-judge/judge_power.txt"),
                                                printed_tables("2026-12-06-df8b021-judge/judge_power.txt")]),
    "judge-power-df8b021-seed7": lambda: "\n\n".join([
        provenance("2026-12-06-df8b021-judge/judge_power-2.txt"),
        printed_section("2026-12-06-df8b021-judge/judge_power-2.txt", "Per release (stopped at its first failed window)"),
        printed_section("2026-12-06-df8b021-judge/judge_power-2.txt", "Targets (issue 22)")]),
    "judge-power-82cae26": lambda: "\n\n".join([provenance("2026-12-06-82cae26-judge/judge_power.txt"),
                                                printed_tables("2026-12-06-82cae26-judge/judge_power.txt")]),
    "judge-power-4beeccb-targets": lambda: "\n\n".join([
        provenance("2026-12-06-4beeccb-judge/judge_power.txt"),
        printed_section("2026-12-06-4beeccb-judge/judge_power.txt", "Targets (issue 22)")]),
    "judge-power-184de39-targets": lambda: "\n\n".join([
        provenance("2026-12-06-184de39-judge/judge_power.txt"),
        printed_section("2026-12-06-184de39-judge/judge_power.txt", "Targets (issue 22)")]),
    "judge-power-73edc22-ms40": lambda: "\n\n".join([
        provenance("2026-12-07-73edc22-judge/judge_power.txt"),
        printed_section("2026-12-07-73edc22-judge/judge_power.txt", "Per release (stopped at its first failed window)"),
        printed_section("2026-12-07-73edc22-judge/judge_power.txt", "Targets (issue 22)")]),
    "judge-power-ms6": lambda: "\n\n".join([
        provenance("2026-12-07-795148e-judge/judge_power.txt"),
        printed_section("2026-12-07-795148e-judge/judge_power.txt", "Per window (every window of every release is run)"),
        printed_section("2026-12-07-795148e-judge/judge_power.txt", "Targets (issue 22)")]),
    "good-rollings-steady": lambda: "\n\n".join([provenance("2026-12-07-f3afcad/good_rollings.txt"),
                                                 printed_tables("2026-12-07-f3afcad/good_rollings.txt")]),
    "good-rollings-curl": lambda: "\n\n".join([provenance("2026-12-07-fd90ad6/good_rollings.txt"),
                                               printed_tables("2026-12-07-fd90ad6/good_rollings.txt")]),
    "good-rollings-busier": lambda: "\n\n".join([provenance("2026-12-07-5ec71b4/good_rollings.txt"),
                                                 printed_tables("2026-12-07-5ec71b4/good_rollings.txt")]),
    "judge-bounds": lambda: "\n\n".join([provenance("2026-12-07-306a7c3-judge/judge_bounds.txt"),
                                         printed_tables("2026-12-07-306a7c3-judge/judge_bounds.txt")]),
    "soak-totals": soak_totals,
    "soak-faults-e3b2c3f": lambda: soak_fault_table(["2026-12-02-e3b2c3f-soak/net5/runs.jsonl",
                                                     "2026-12-02-e3b2c3f-soak/net6/runs.jsonl"]),
    "soak-faults-seed9": lambda: soak_fault_table([rel for rels in HARDER_SOAKS.values() for rel in rels]),
    "soak-violations-seed9": lambda: soak_violation_kinds(HARDER_SOAKS),
    "soak-violations-long": lambda: soak_violation_kinds(LONG_SOAKS),
    "soak-faults-32f23ee": lambda: soak_fault_table(LONG_SOAKS["32f23ee (seeds 12, 13)"]),
    "soak-sent-lean": lambda: soak_sent_shares({**LONG_SOAKS, **LEAN_SOAKS}),
    "soak-violations-lean": lambda: soak_violation_kinds(LEAN_SOAKS),
    "soak-faults-0ffdee9": lambda: soak_fault_table(LEAN_SOAKS["0ffdee9 (seeds 14, 15)"]),
    "soak-faults-fbff56e": lambda: soak_fault_table(LEAN_SOAKS["fbff56e (seed 16)"]),
    "soak-sent-one-commit": lambda: soak_sent_shares(ONE_COMMIT_SOAKS),
    "soak-violations-one-commit": lambda: soak_violation_kinds(ONE_COMMIT_SOAKS),
    "soak-faults-f6db700": lambda: soak_fault_table(ONE_COMMIT_SOAKS["f6db700 = 0abd4e9 (seeds 21-25)"]),
    "soak-sent-thousand": lambda: soak_sent_shares(THOUSAND_SOAKS),
    "soak-violations-thousand": lambda: soak_violation_kinds(THOUSAND_SOAKS),
    "soak-per-seed-69cb3be": lambda: soak_per_seed(THOUSAND_SOAKS[THOUSAND]),
    "soak-faults-69cb3be": lambda: soak_fault_table(THOUSAND_SOAKS[THOUSAND]),
}


def render(text: str) -> str:
    def block(m: re.Match) -> str:
        return m[1] + BLOCKS[m["name"]]().rstrip("\n") + "\n" + m[4]
    return MARK.sub(block, text)


def blocks_in(text: str) -> list[str]:
    return [m["name"] for m in MARK.finditer(text)]


def differing(doc: Path) -> list[str]:
    """The blocks of `doc` whose text is not what the raw files give."""
    text = doc.read_text()
    want = {m["name"]: m["body"] for m in MARK.finditer(render(text))}
    return [m["name"] for m in MARK.finditer(text) if m["body"] != want[m["name"]]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each block that differs")
    args = p.parse_args(argv)
    bad = 0
    for doc in DOCS:
        if args.check:
            for name in differing(doc):
                print(f"{doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}: block {name} differs "
                      "from bench/render_figures.py's output")
                bad += 1
        else:
            doc.write_text(render(doc.read_text()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
