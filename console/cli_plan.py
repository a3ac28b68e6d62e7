"""Choosing and starting a plan: `console recommend` (the article's decision
tree) and `console init` (a commented plan for an inventory's groups, with
the strategy that tree recommends)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from strategies.recommend import Recommendation

from .cli_args import Parser, ask
from .exitcodes import Exit

LB_GROUP_NAMES = ("lb", "lbs", "load_balancers", "loadbalancers", "nginx")
# fleet size -> the tree's `scale` answer when --scale is not given (the article names no cut-offs)
SCALE_CUTOFFS = ((50, "large"), (10, "medium"), (0, "small"))


def _add_questions(p: argparse.ArgumentParser) -> None:
    from strategies.recommend import QUESTIONS

    for key, (question, choices) in QUESTIONS.items():
        p.add_argument(f"--{key.replace('_', '-')}", choices=choices, help=question)


def _ask(p: argparse.ArgumentParser, key: str) -> str:
    """One missing answer, from the terminal; a usage error when nobody can
    answer (stdin not a terminal, end of input)."""
    from strategies.recommend import QUESTIONS

    question, choices = QUESTIONS[key]
    flag = f"--{key.replace('_', '-')}"
    while sys.stdin.isatty():
        try:
            reply = input(f"{question} [{'/'.join(choices)}] ").strip()
        except EOFError:
            break
        if reply in choices:
            return reply
    p.error(f"{flag} is needed ({question} {'/'.join(choices)})")
    raise AssertionError("unreachable")  # p.error exits


def answered(p: argparse.ArgumentParser, answers: dict[str, str | None]) -> Recommendation:
    """Walk the decision tree, asking for each answer its path needs."""
    from strategies.recommend import MissingAnswer, recommend

    while True:
        try:
            criticality = answers["criticality"]
            if criticality is None:
                raise MissingAnswer("criticality")
            return recommend(criticality, answers.get("scale"), answers.get("budget"), answers.get("test_env"))
        except MissingAnswer as missing:
            answers[missing.key] = _ask(p, missing.key)


def parser_recommend() -> argparse.ArgumentParser:
    p = Parser(prog="console recommend", description="Answer the seed article's questions and get a "
               "strategy from its decision tree, with the reason. Missing answers are asked interactively.")
    _add_questions(p)
    return p


def main_recommend(argv: Sequence[str]) -> int:
    from strategies.recommend import QUESTIONS

    p = parser_recommend()
    args = vars(p.parse_args(argv))
    rec = answered(p, {k: args[k] for k in QUESTIONS})
    print(f"recommended: {rec.strategy.replace('_', '-')}")
    print(f"because: {rec.why}")
    print(f"path: {' -> '.join(rec.path)}")
    print(f"start from: {rec.example}")
    return Exit.OK


def parser_init() -> argparse.ArgumentParser:
    p = Parser(prog="console init", description="Write a commented plan for an inventory's groups, with the "
               "strategy the article's decision tree recommends (the questions of `console recommend`; "
               "--scale defaults to the group's size: 50+ hosts large, 10+ medium, else small).")
    p.add_argument("--inventory", metavar="FILE",
                   help="Ansible-style inventory (YAML or INI); default: the embedded SIMULATED fleet")
    p.add_argument("--hosts", metavar="GROUP", help="the group running the service (default: the only group "
                   "that is not the load balancers')")
    p.add_argument("--load-balancers", metavar="GROUP",
                   help=f"the group of nginx hosts (default: one named {', '.join(LB_GROUP_NAMES)})")
    p.add_argument("--service", default="agent", metavar="NAME", help="service name (default agent)")
    p.add_argument("--release", default="2.0.0", metavar="VERSION", help="the release the plan ships (default 2.0.0)")
    p.add_argument("--output", "-o", default="plan.yaml", metavar="FILE",
                   help="where to write the plan, `-` for stdout (default plan.yaml)")
    p.add_argument("--yes", action="store_true", help="overwrite an existing --output without asking")
    _add_questions(p)
    return p


def _groups(inventory: Any) -> dict[str, tuple[str, ...]]:
    return {g: hosts for g, hosts in inventory.groups.items() if g not in ("all", "ungrouped") and hosts}


def _pick(p: argparse.ArgumentParser, groups: dict[str, tuple[str, ...]], given: str | None, what: str,
          candidates: list[str]) -> str:
    if given is not None:
        if given not in groups:
            p.error(f"{what}: the inventory has no group {given!r} (groups: {', '.join(groups) or 'none'})")
        return given
    if len(candidates) != 1:
        among = f"candidates: {', '.join(candidates)}" if candidates else f"groups: {', '.join(groups) or 'none'}"
        p.error(f"{what}: cannot tell which group: pass {what} GROUP ({among})")
    return candidates[0]


def _refused_by_loader(text: str) -> str | None:
    """Why the plan loader would refuse this plan text (naming the field), or None."""
    import tempfile

    from inventory.errors import InputError
    from strategies.plan import load_plan

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
        fh.write(text)
        fh.flush()
        try:
            load_plan(fh.name)
        except InputError as exc:
            return f"the plan would not load: {exc.field}: {exc.message}"
    return None


def main_init(argv: Sequence[str]) -> int:
    from inventory.errors import InputError
    from inventory.loaders import embedded_fleet_path, load_inventory, read_inventory

    from .plan_templates import render

    p = parser_init()
    args = p.parse_args(argv)
    inv_path = str(args.inventory or embedded_fleet_path())
    try:
        inventory = (read_inventory(inv_path, os.environ.get("ROLLOUT_INVENTORY_ENGINE", "auto"))
                     if args.inventory else load_inventory(inv_path))
    except InputError as exc:
        print(f"console init: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    groups = _groups(inventory)
    lbs = _pick(p, groups, args.load_balancers, "--load-balancers", [g for g in groups if g in LB_GROUP_NAMES])
    hosts = _pick(p, groups, args.hosts, "--hosts", [g for g in groups if g != lbs
                                                     and not set(groups[g]) & set(groups[lbs])])
    count = len(groups[hosts])
    answers = {"criticality": args.criticality, "budget": args.budget, "test_env": args.test_env,
               "scale": args.scale or next(s for n, s in SCALE_CUTOFFS if count >= n)}
    rec = answered(p, answers)
    out = Path(args.output)
    text = render(rec.strategy, inventory=inv_path, why=rec.why, path=" -> ".join(rec.path),
                  output=args.output, version=args.release, service=args.service, hosts=hosts, lbs=lbs,
                  count=count)
    problem = _refused_by_loader(text)
    if problem:  # --service or --release the plan loader would refuse: say so before writing anything
        p.error(problem)
    if args.output == "-":
        sys.stdout.write(text)
        return Exit.OK
    if not ask(p, f"{out} exists. Overwrite?", args.yes or not out.exists()):
        print(f"console init: {out} not overwritten")
        return Exit.NOT_CONFIRMED
    try:
        out.write_text(text)
    except OSError as exc:
        print(f"console init: error: --output {out}: {exc.strerror or exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"wrote {out}: {rec.strategy.replace('_', '-')} for group {hosts} ({count} host(s)) behind {lbs}")
    print(f"next: console --plan {out} --inventory {inv_path} --dry-run")
    return Exit.OK
