"""`console judge backtest`: what the judge would have decided on recorded samples.

    console judge backtest SAMPLES.jsonl [--plan PLAN]
    console judge backtest --from-journal JOURNAL [--plan PLAN]

Input: JSON Lines, one sample per line, `{"trial": ID, "t": seconds since
the window opened, "canary": {"requests": N, "failed": K, "latencies":
[seconds, ...]}, "baseline": {...}}` (a journal's `judge_sample` events are
the same, one trial per judged window). Output: one JSON line per trial,
`{"trial": ID, "verdict": "pass"|"fail"|"inconclusive", "at": seconds,
"findings": [...]}`, in the order trials first appear. The policy is the
plan's (thresholds, alerts, analysis), the seed's defaults without --plan.
Bad input: `file:line: field: ...` on stderr and exit 2, nothing printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .exitcodes import Exit

if TYPE_CHECKING:
    from strategies.backtest import Sample


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="console judge", description="The judge on recorded samples (docs/judge.md).")
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("backtest", help="replay recorded samples through the judge: one JSON verdict per trial")
    b.add_argument("samples", nargs="?", metavar="FILE", help="JSON Lines, one sample per line")
    b.add_argument("--from-journal", metavar="JOURNAL", help="the judge samples a recorded session journalled")
    b.add_argument("--plan", help="plan YAML whose thresholds, alerts and analysis keys judge (default: the seed's)")
    return p


def read_samples(path: str) -> list[Sample]:
    from strategies.backtest import SampleError, sample

    out: list[Sample] = []
    last: dict[str | int, float] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                s = sample(json.loads(line))
                if s.t < last.get(s.trial, 0.0):
                    raise SampleError(f"t: {s.t:g} is before the trial's previous sample ({last[s.trial]:g})")
                last[s.trial] = s.t
                out.append(s)
            except json.JSONDecodeError as exc:
                raise SampleError(f"{path}:{number}: not JSON ({exc.msg})") from None
            except SampleError as exc:
                raise SampleError(f"{path}:{number}: {exc}") from None
    return out


def journal_samples(path: str) -> list[Sample]:
    """The `judge_sample` events of a journal, one trial per window name."""
    from strategies.backtest import SampleError, sample

    from .journal import read_records

    out = []
    for number, record, _ in read_records(Path(path)):
        if record is None:
            raise SampleError(f"{path}:{number}: record is not JSON")
        event = record.get("event") if record.get("type") == "event" else None
        if not isinstance(event, dict) or event.get("kind") != "judge_sample":
            continue
        try:
            out.append(sample({"trial": event.get("name"), "t": event.get("t"), "canary": event.get("canary"),
                               "baseline": event.get("baseline")}))
        except SampleError as exc:
            raise SampleError(f"{path}:{number}: {exc}") from None
    if not out:
        raise SampleError(f"{path}:1: no judge samples in this journal (a shadow or judged run records them)")
    return out


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    if (args.samples is None) == (args.from_journal is None):
        print("console judge backtest: error: give either FILE or --from-journal JOURNAL", file=sys.stderr)
        return Exit.BAD_INPUT
    from inventory.errors import InputError
    from strategies.backtest import SampleError, Setup, run_trial
    from strategies.plan import Plan, load_plan

    try:
        plan = load_plan(args.plan) if args.plan else Plan(source="<seed>", name="seed", strategy="canary")
        samples = read_samples(args.samples) if args.samples else journal_samples(args.from_journal)
    except FileNotFoundError as exc:
        print(f"console judge backtest: error: {exc.filename}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    except (SampleError, InputError, ValueError) as exc:
        print(f"console judge backtest: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    setup = Setup.of(plan)
    trials: dict[str | int, list[Sample]] = {}
    for s in samples:
        trials.setdefault(s.trial, []).append(s)
    for trial, rows in trials.items():
        print(json.dumps(run_trial(trial, rows, setup)), flush=True)
    return Exit.OK
