"""How well does the judge see on traffic that does not share its model?
Detection and false-alarm rates per analysis window and per release,
measured over many SIMULATED releases, for the judge of this tree and,
with --against, older judges fed the same traffic in the same sitting.

The traffic is written from what real fleets do, not from what the judge
assumes (tests/test_analysis.py holds the judge to its own model; this does
not):

- host-to-host spread: each host's latencies are scaled by a lognormal
  factor (sigma 0.08), its error rate by another (sigma 0.25);
- retry clusters: a failing request shows 1 + Poisson(0.5) failed tries
  (1.5 on average) on its host, and a host has short bursts (2 % of its
  samples fail ten times as often);
- the baseline's error rate (0.5 % on average) drifts between windows
  (lognormal sigma 0.3) and within them, and short blips shared by every
  host (3 % of samples: errors x4, latency x1.4);
- heavy latency tails: lognormal body (median 40 ms, sigma 0.35), 4 % of
  requests slowed by 1 + 2 x Lomax(1.5);
- time-varying load: 100 req/s x (1 + 0.3 sin) with per-sample jitter, and
  latency rising with load;
- warm-up after restart: a freshly restarted canary host is up to 60 %
  slower, decaying with a 20 s time constant; it restarts 10 s before its
  first window opens (deploy, health checks, the nginx change);
- latencies as nginx logs them: in whole milliseconds (`--resolution`,
  0 for exact values). With `--body-ms 6` (a fast service: health-like
  calls, cached answers) most requests share a handful of values.

Releases: good (the canary hosts are like the others); +2 points of errors;
tail-only (p95 x1.5, median unchanged: only requests beyond the body's
90th percentile are slowed 1.5x). Each release runs the seed canary plan's
analysis windows (60 s at 1, 5, 10 and 50 %, extended up to 900 s) with the
seed's thresholds and alert tiers; the engine's window protocol is
reproduced (a sample every 5 s, fail at once, close at the planned end,
hold missing data against a pass where the judge's tree has
strategies/coverage.py, extend, inconclusive at the maximum). Every window of a release is run
(after a failure too: each window is also a measurement of its own), and a
release counts as stopped at its first failed window.

The judge of this tree is fed what the engine now feeds it (failed
requests per host, and each canary host's age since its restart, which the
engine knows because it restarted it; not how slow the host is). Older
judges (--against REPO@COMMIT, repeatable: strategies/analysis.py and the
metrics.py and judge_stats.py it imports, loaded from git) are fed what
their engine fed them: a judge with a false-alarm budget, failed requests
per host, with its own plan's latency warm-up; the judge before that,
failed tries, pooled. All see the same samples, rotating which goes first.

    python3 bench/judge_power.py --trials 300 --against /work/main@601923a --against /work/main@0f3cada
"""
from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import inspect
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import start
from strategies import analysis as new_analysis
from strategies.durations import parse_duration
from strategies.plan import DEFAULT_CANARY_STEPS, Alerts, Analysis, Thresholds

SAMPLE = 5.0
HOSTS = 10
RPS = 100.0
BASE_ERROR = 0.005
BODY_MEDIAN, BODY_SIGMA = 0.040, 0.35  # main() sets BODY_MEDIAN from --body-ms
RESOLUTION = 0.001  # main() sets it from --resolution
TAIL_SHARE, TAIL_SHAPE = 0.04, 1.5
HOST_LATENCY_SIGMA, HOST_ERROR_SIGMA = 0.08, 0.25
BURST_CHANCE, BURST_FACTOR = 0.02, 10.0
BLIP_CHANCE, BLIP_ERRORS, BLIP_LATENCY = 0.03, 4.0, 1.4
DRIFT_SIGMA = 0.3
WARM_UP, WARM_UP_SECONDS = 0.6, 20.0
RESTART_LEAD = 10.0  # a canary host restarts this long before its window opens (deploy, health checks, nginx)
EXTRA_TRIES = 0.5  # a failing request shows 1 + Poisson(0.5) failed tries
STEPS = [(float(a["set_weight"]), parse_duration(b["analysis"]))
         for a, b in zip(DEFAULT_CANARY_STEPS[0::2], DEFAULT_CANARY_STEPS[1::2]) if "analysis" in b]


def body_quantile(q: float) -> float:
    """The q-quantile of one request's latency shape (body and tail, before
    host, load and warm-up factors), by simulation with a fixed seed."""
    rng = np.random.default_rng(12345)
    x = np.exp(rng.normal(0, BODY_SIGMA, 1_000_000))
    tail = rng.random(x.size) < TAIL_SHARE
    x[tail] *= 1 + 2 * rng.pareto(TAIL_SHAPE, tail.sum())
    return float(np.quantile(x, q))


P90 = body_quantile(0.90)


@dataclass(frozen=True)
class Case:
    name: str
    extra_errors: float = 0.0
    tail_only: float = 1.0  # factor on requests beyond the body's p90

    @property
    def good(self) -> bool:
        return self.extra_errors == 0 and self.tail_only == 1.0


CASES = [Case("good"), Case("+2 pt errors", extra_errors=0.02), Case("tail-only p95 x1.5", tail_only=1.5)]


@dataclass
class HostSample:
    name: str
    requests: int
    failed: int  # failed requests
    failed_tries: int
    latencies: np.ndarray


@dataclass
class Sample:
    canary: list[HostSample]
    baseline: list[HostSample]


@dataclass
class Release:
    """One release's fixed traits: host factors, load phase."""

    rng: np.random.Generator
    case: Case
    latency_factor: np.ndarray = field(init=False)
    error_factor: np.ndarray = field(init=False)
    phase: float = field(init=False)

    def __post_init__(self) -> None:
        self.latency_factor = np.exp(self.rng.normal(0, HOST_LATENCY_SIGMA, HOSTS))
        self.error_factor = np.exp(self.rng.normal(0, HOST_ERROR_SIGMA, HOSTS))
        self.phase = float(self.rng.uniform(0, 2 * math.pi))


class WindowTraffic:
    """The samples of one window, generated on demand and kept, so two
    judges see exactly the same ones however long each one looks."""

    def __init__(self, release: Release, rng: np.random.Generator, share: float, started: float,
                 canary_hosts: int, restarted: dict[int, float]):
        self.r, self.rng, self.share, self.started = release, rng, share, started
        self.canary_hosts = canary_hosts
        self.restarted = restarted  # canary host -> release time it restarted
        self.rate = BASE_ERROR * math.exp(rng.normal(0, DRIFT_SIGMA))  # drift between windows
        self.drift_phase = float(rng.uniform(0, 2 * math.pi))
        self.samples: list[Sample] = []

    def ages(self, n: int) -> dict[str, float]:
        """Seconds since each canary host's restart at sample `n`: what the
        engine knows (it restarted them), not how slow they are."""
        t = self.started + (n + 1) * SAMPLE
        return {f"h{h}": t - self.restarted[h] for h in range(self.canary_hosts) if h in self.restarted}

    def sample(self, n: int) -> Sample:
        while len(self.samples) <= n:
            self.samples.append(self._next(len(self.samples)))
        return self.samples[n]

    def _next(self, n: int) -> Sample:
        rng, r = self.rng, self.r
        t_window = (n + 1) * SAMPLE
        t = self.started + t_window
        load = (1 + 0.3 * math.sin(2 * math.pi * t / 900 + r.phase)) * math.exp(rng.normal(0, 0.1))
        total = rng.poisson(RPS * load * SAMPLE)
        blip = rng.random() < BLIP_CHANCE
        rate = self.rate * math.exp(0.15 * math.sin(2 * math.pi * t_window / 300 + self.drift_phase))
        rate *= BLIP_ERRORS if blip else 1.0
        canary_n = rng.binomial(total, self.share)
        c_split = rng.multinomial(canary_n, [1 / self.canary_hosts] * self.canary_hosts)
        b_hosts = HOSTS - self.canary_hosts
        b_split = rng.multinomial(total - canary_n, [1 / b_hosts] * b_hosts)
        slow = (1 + 0.15 * (load - 1)) * (BLIP_LATENCY if blip else 1.0)
        canary = [self._host(h, int(c_split[h]), rate, slow, t, canary=True) for h in range(self.canary_hosts)]
        baseline = [self._host(self.canary_hosts + i, int(b_split[i]), rate, slow, t, canary=False)
                    for i in range(b_hosts)]
        return Sample(canary, baseline)

    def _host(self, h: int, n: int, rate: float, slow: float, t: float, canary: bool) -> HostSample:
        rng, r, case = self.rng, self.r, self.r.case
        host_rate = rate * r.error_factor[h] * (BURST_FACTOR if rng.random() < BURST_CHANCE else 1.0)
        if canary:
            host_rate += case.extra_errors
        failed = int(rng.binomial(n, min(1.0, host_rate)))
        failed_tries = failed + int(rng.poisson(EXTRA_TRIES * failed)) if failed else 0
        shape = np.exp(rng.normal(0, BODY_SIGMA, n))
        tail = rng.random(n) < TAIL_SHARE
        shape[tail] *= 1 + 2 * rng.pareto(TAIL_SHAPE, int(tail.sum()))
        if canary and case.tail_only != 1.0:
            shape[shape > P90] *= case.tail_only
        factor = BODY_MEDIAN * r.latency_factor[h] * slow
        if canary and h in self.restarted:
            factor *= 1 + WARM_UP * math.exp(-(t - self.restarted[h]) / WARM_UP_SECONDS)
        seconds = shape * factor
        return HostSample(f"h{h}", n, failed, failed_tries,
                          np.floor(seconds / RESOLUTION) * RESOLUTION if RESOLUTION else seconds)


# -- judges -----------------------------------------------------------------------------

class Judge:
    """One judge behind the engine's window protocol."""

    name = ""

    def __init__(self, module: Any, policy: Callable[[int], Any], feed: Callable[[Any, list[HostSample]], Any],
                 ages: bool = False, coverage: Any = None):
        self.a, self.policy, self.feed = module, policy, feed
        self.ages = ages  # the judge takes each instance's age (seconds since its restart), as the engine knows it
        # strategies/coverage.py of the judge's tree, where it has one: at a window's end the engine
        # holds missing data against a pass (extend, inconclusive at the maximum), and so does this
        self.coverage = coverage
        self.seconds = 0.0  # CPU spent judging
        self.why: dict[str, int] = {}  # metric of the first finding of each failed window -> count

    def window(self, traffic: WindowTraffic, index: int, planned: float, most: float) -> tuple[str, float]:
        """(verdict, seconds to it) of the release's window `index`."""
        a, policy = self.a, self.policy(index)
        window, spent, n = a.Window(), 0.0, 0
        while True:
            s = traffic.sample(n)
            n += 1
            spent += SAMPLE
            started = time.process_time()
            judged, base = self.feed(a, s.canary), self.feed(a, s.baseline)
            extra = {"ages": traffic.ages(n - 1)} if self.ages else {}
            window, found = a.fold(window, judged, base, a.Readings(), policy, **extra)
            verdict = found.verdict.value
            if verdict not in ("fail", "environment") and spent + 1e-9 >= planned:
                final = spent + 1e-9 >= most
                closed = a.close(window, policy, final=final)
                if self.coverage is not None:
                    closed, _ = self.coverage.hold(closed, window, policy, self.coverage.CustomWindow(), (),
                                                   final=final)
                verdict = closed.verdict.value
            self.seconds += time.process_time() - started
            if verdict == "fail":
                key = f"{traffic.r.case.name} @{traffic.share * 100:g}%: " + "+".join(
                    sorted({f.metric + ("~" if f.op == "~" else "") for f in found.findings}))
                self.why[key] = self.why.get(key, 0) + 1
            if verdict != "pending":
                return verdict, spent


def feed_new(a: Any, hosts: list[HostSample]) -> Any:
    """What the engine feeds this tree's judge: failed requests, per host."""
    per_host = tuple((h.name, a.Evidence(h.requests, h.failed, tuple(h.latencies.tolist()))) for h in hosts)
    return a.Evidence(sum(h.requests for h in hosts), sum(h.failed for h in hosts),
                      tuple(x for _, e in per_host for x in e.latencies), per_host)


def feed_old(a: Any, hosts: list[HostSample]) -> Any:
    """What the old engine fed the old judge: every try (failed tries
    counted each, so a retried failure weighs 1.5 on average), pooled."""
    tries = sum(h.requests + h.failed_tries - h.failed for h in hosts)
    return a.Evidence(tries, sum(h.failed_tries for h in hosts),
                      tuple(x for h in hosts for x in h.latencies.tolist()))


def git_show(repo: str, commit: str, path: str) -> str | None:
    done = subprocess.run(["git", "-C", repo, "show", f"{commit}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


# What an old judge's strategies/coverage.py needs beside analysis.py (CustomWindow and the
# custom metrics' plan model, with what they import).
COVERAGE_FILES = ("coverage.py", "custom_metrics.py", "durations.py", "plan/metrics.py", "plan/values.py")


def load_old(spec: str, package_name: str) -> types.ModuleType:
    """strategies/analysis.py (and the metrics.py, judge_stats.py and
    events.py it imports, where they exist) of REPO@COMMIT, loaded as the package
    `package_name` from `git show`; with its coverage.py (`package_name`.coverage)
    and what that imports, where the commit has one."""
    repo, _, commit = spec.partition("@")
    commit = commit or "HEAD"
    folder = Path(tempfile.mkdtemp(prefix="old-judge-"))
    has_coverage = git_show(repo, commit, "strategies/coverage.py") is not None
    for name in ("analysis.py", "metrics.py", "judge_stats.py", "events.py") + (COVERAGE_FILES if has_coverage else ()):
        text = git_show(repo, commit, f"strategies/{name}")
        if text is not None:
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_text(text)
    (folder / "__init__.py").write_text("")
    if has_coverage:
        (folder / "plan" / "__init__.py").write_text("")
    package = importlib.util.spec_from_file_location(package_name, folder / "__init__.py",
                                                     submodule_search_locations=[str(folder)])
    assert package is not None and package.loader is not None
    module = importlib.util.module_from_spec(package)
    sys.modules[package_name] = module
    package.loader.exec_module(module)
    if has_coverage:
        importlib.import_module(f"{package_name}.coverage")
    return importlib.import_module(f"{package_name}.analysis")


def coverage_of(analysis: types.ModuleType) -> Any:
    """The coverage module beside a judge's analysis module, or None."""
    package = analysis.__name__.rpartition(".")[0]
    return sys.modules.get(f"{package}.coverage") or (
        importlib.import_module(f"{package}.coverage") if package == "strategies" else None)


def seed_warm_up(spec: str) -> float:
    """The seed's `analysis.latency_warm_up` at REPO@COMMIT (its plan
    models' default: strategies/plan/models.py, before that strategies/plan.py),
    so an older judge runs with its own plan's setting."""
    repo, _, commit = spec.partition("@")
    text = (git_show(repo, commit or "HEAD", "strategies/plan/models.py")
            or git_show(repo, commit or "HEAD", "strategies/plan.py") or "")
    found = re.search(r"latency_warm_up: Duration = ([0-9.]+)", text)
    return float(found.group(1)) if found else 0.0


def judge_of(module: Any, thresholds: Thresholds, alerts: Alerts, budget: float, warm_up: float) -> Judge:
    """A judge behind the window protocol, fed as its engine fed it: a
    judge with a false-alarm budget (judge_stats) takes failed requests per
    host, its policy for each window, and each instance's age where its
    fold asks for them; an older one failed tries, pooled."""
    if not hasattr(module, "Budget"):
        fixed = module.Policy.of(thresholds, alerts)
        return Judge(module, lambda _w: fixed, feed_old)
    keys = inspect.signature(module.Policy.of).parameters

    def policy(w: int) -> Any:
        extra = {"window": w} if "window" in keys else {}
        return module.Policy.of(thresholds, alerts, budget=budget, windows=len(STEPS), sample_interval=SAMPLE,
                                warm_up=warm_up, **extra)

    return Judge(module, functools.lru_cache(maxsize=None)(policy), feed_new,
                 ages="ages" in inspect.signature(module.fold).parameters, coverage=coverage_of(module))


# -- the run ------------------------------------------------------------------------------

@dataclass
class Tally:
    windows: dict[int, dict[str, int]] = field(default_factory=dict)  # window -> verdict -> count
    times: dict[int, list[float]] = field(default_factory=dict)  # window -> seconds to a pass
    releases: dict[str, int] = field(default_factory=dict)
    first_pass: list[float] = field(default_factory=list)


def release_outcome(verdicts: list[str]) -> str:
    for i, v in enumerate(verdicts):
        if v == "fail":
            return "stopped at 1%" if i == 0 else "stopped later"
    if "inconclusive" in verdicts or "environment" in verdicts:
        return "passed with a human"
    return "passed"


def run_release(seed: int, case_index: int, trial: int, judges: list[Judge], tallies: dict[str, Tally],
                most: float) -> None:
    root = np.random.SeedSequence([seed, case_index, trial])
    release_rng, *window_seeds = (np.random.default_rng(s) for s in root.spawn(1 + len(STEPS)))
    release = Release(release_rng, CASES[case_index])
    verdicts: dict[str, list[str]] = {j.name: [] for j in judges}
    started, restarted = 0.0, {}  # every canary host restarts RESTART_LEAD before its first window (h0 too)
    order = judges[trial % len(judges):] + judges[:trial % len(judges)]  # rotate which judge goes first
    for w, ((share, planned), rng) in enumerate(zip(STEPS, window_seeds)):
        canary_hosts = max(1, round(share / 100 * HOSTS))
        for h in range(canary_hosts):
            restarted.setdefault(h, started - RESTART_LEAD)  # new canary hosts restart as the step begins
        traffic = WindowTraffic(release, rng, share / 100, started, canary_hosts, dict(restarted))
        longest = planned
        for judge in order:
            verdict, spent = judge.window(traffic, w, planned, most)
            verdicts[judge.name].append(verdict)
            t = tallies[judge.name]
            counts = t.windows.setdefault(w, {})
            counts[verdict] = counts.get(verdict, 0) + 1
            if verdict == "pass":
                t.times.setdefault(w, []).append(spent)
            longest = max(longest, spent)
        started += longest + 30  # the step's change between windows
    for judge in judges:
        t = tallies[judge.name]
        outcome = release_outcome(verdicts[judge.name])
        t.releases[outcome] = t.releases.get(outcome, 0) + 1


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


def main() -> int:
    global BODY_MEDIAN, RESOLUTION
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300, help="releases per case")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--against", metavar="REPO@COMMIT", action="append", default=[],
                    help="also run the judge of that commit, e.g. /work/main@601923a (repeatable)")
    ap.add_argument("--max-window", type=float, default=900.0)
    ap.add_argument("--body-ms", type=float, default=40.0, help="the latency body's median")
    ap.add_argument("--resolution", type=float, default=0.001,
                    help="latencies truncated to this many seconds, as nginx logs them (0: exact)")
    args = ap.parse_args()
    BODY_MEDIAN, RESOLUTION = args.body_ms / 1000, args.resolution
    start("judge_power", folder_suffix="-judge")
    thresholds, alerts = Thresholds(max_window=args.max_window), Alerts()
    seed_analysis = Analysis()
    budget = seed_analysis.false_alarm_budget
    judges = [judge_of(new_analysis, thresholds, alerts, budget, seed_analysis.latency_warm_up)]
    judges[0].name = "new"
    for i, spec in enumerate(args.against):
        judges.append(judge_of(load_old(spec, f"old_judge_{i}"), thresholds, alerts, budget, seed_warm_up(spec)))
        judges[-1].name = f"old ({spec})"
    print("# SIMULATED: the real judge fed simulated traffic (see the docstring for its model), no host involved")
    print(f"# {args.trials} releases per case; {RPS:g} req/s; {HOSTS} hosts; windows "
          + ", ".join(f"{p:g}% {w:g}s" for p, w in STEPS) + f", extended up to {args.max_window:g}s; "
          f"budget {budget:g} per release over {len(STEPS)} windows (judges that have one); "
          f"latency warm-up {seed_analysis.latency_warm_up:g}s (new); seed {args.seed}; "
          f"body p90 {P90:.3f} (x{BODY_MEDIAN * 1000:g} ms); latencies logged to {RESOLUTION:g} s")
    wall = time.perf_counter()
    results: dict[str, dict[str, Tally]] = {}
    for ci, case in enumerate(CASES):
        tallies = {j.name: Tally() for j in judges}
        for trial in range(args.trials):
            run_release(args.seed, ci, trial, judges, tallies, args.max_window)
        results[case.name] = tallies
        print(f"# {case.name}: done at {time.perf_counter() - wall:.0f}s", flush=True)
    report(results, judges, args.trials)
    for j in judges:
        print(f"# judge {j.name}: {j.seconds:.1f} s of CPU judging; failed windows by finding: "
              + "; ".join(f"{k} {v}" for k, v in sorted(j.why.items())))
    print(f"# wall {time.perf_counter() - wall:.0f}s")
    return 0


def report(results: dict[str, dict[str, Tally]], judges: list[Judge], trials: int) -> None:
    print("\n## Per window (every window of every release is run)\n")
    print("| share | release | judge | stopped | paused: environment | inconclusive | passed | median s to pass |")
    print("|---|---|---|---|---|---|---|---|")
    for w, (share, _) in enumerate(STEPS):
        for case in CASES:
            for j in judges:
                t = results[case.name][j.name]
                c = t.windows.get(w, {})
                print(f"| {share:g}% | {case.name} | {j.name} | {pct(c.get('fail', 0), trials)} | "
                      f"{pct(c.get('environment', 0), trials)} | {pct(c.get('inconclusive', 0), trials)} | "
                      f"{pct(c.get('pass', 0), trials)} | {med(t.times.get(w, []))} |")
    print("\n## Per release (stopped at its first failed window)\n")
    print("| release | judge | stopped at 1% | stopped later | passed with a human | passed |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        for j in judges:
            r = results[case.name][j.name].releases
            print(f"| {case.name} | {j.name} | {pct(r.get('stopped at 1%', 0), trials)} | "
                  f"{pct(r.get('stopped later', 0), trials)} | {pct(r.get('passed with a human', 0), trials)} | "
                  f"{pct(r.get('passed', 0), trials)} |")
    print("\n## Targets (issue 22)\n")
    print("| measure | target | " + " | ".join(j.name for j in judges) + " |")
    print("|---|---|" + "---|" * len(judges))

    def row(label: str, target: str, value: Callable[[str], str]) -> None:
        print(f"| {label} | {target} | " + " | ".join(value(j.name) for j in judges) + " |")

    def stopped(case: str, name: str) -> int:
        r = results[case][name].releases
        return r.get("stopped at 1%", 0) + r.get("stopped later", 0)

    row("good releases wrongly stopped, per release", "<= 1 %", lambda n: pct(stopped("good", n), trials))
    row("+2 points stopped before 5 % share", ">= 99 %",
        lambda n: pct(results["+2 pt errors"][n].releases.get("stopped at 1%", 0), trials))
    row("p95 x1.5 tail-only stopped", ">= 95 %", lambda n: pct(stopped("tail-only p95 x1.5", n), trials))
    row("good release passes the 1 % step: median s", "<= 480", lambda n: med(results["good"][n].times.get(0, [])))
    row("good release at the 1 % step: inconclusive", "<= 5 %",
        lambda n: pct(results["good"][n].windows.get(0, {}).get("inconclusive", 0), trials))


if __name__ == "__main__":
    sys.exit(main())
