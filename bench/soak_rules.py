"""The soak's rules, pure (no hosts, no clock): what may be excused and
when, read by bench/soak.py on a live run and by `bench/soak.py --recheck`
on the runs a soak recorded (issue 26).

Every excuse is bounded in time. A fault opens a window at the moment it
was injected (`t`) and closes it GRACE seconds after the operator repaired
it (`healed`); a fault that was never repaired (the run's own process
still going, say) closes at `t`. A failure outside every window is the
console's business. Times are seconds on one monotonic clock: the live
soak's, or, in a record, seconds since the run's load started.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

GRACE = 3.0  # s after a repair during which its after-effects may still show (nginx: 3 tries x 1 s connect timeout)
CLIENT_TIMEOUT = 10.0  # tests/load.py's httpx timeout
MIN_SENT_SHARE = 0.9  # of the requests due by the rate; below it "0 failed" proves nothing (tests/load.py)
LAST_CHANGE_GRACE = 3.0  # s from a host's loss to the run's end within which its last probe may have missed it
VANISHING = {"host_off", "link_cut"}  # requests in flight on the host are lost
OUTAGE = {"lb_off"}  # clients cannot be served at all while it lasts
DEGRADED = {"slow_lossy_link"}  # the host answers, late or after lost packets
RESTARTS = {"health_flap"}  # the fault restarts a serving unit, twice, 3 s apart (bench/soak.py _flap)
RETRIED = (502, 503)  # the statuses nginx tries the next server on (sandbox/lb-site.conf proxy_next_upstream)
# Faults that excuse no client failure at all: nginx keeps serving from the
# instances it routes to, and what the console does about them (a failed
# install, an edit it must not write over, a kill, a jumped clock) is its
# business (tests/test_soak_rules.py holds each one to it).
EXCUSES_NOTHING = {"disk_full", "foreign_edit", "foreign_broken", "sigkill_mid_change", "clock_jump"}
RUN_ENDING_EXITS = (4, 5, 7)  # failed, aborted, paused: the run leaves traffic where its journal last said


@dataclass(frozen=True)
class Request:
    t: float  # when the answer (or the error) came back
    status: int  # 0: no HTTP answer
    version: str | None  # X-Agent-Version: the agent's own answer
    error: str = ""


def window(fault: dict) -> tuple[float, float]:
    """[injected, repaired + GRACE]: when `fault` may excuse a failure."""
    healed = fault.get("healed")
    return fault["t"], (healed if healed is not None else fault["t"]) + GRACE


def timed_out(r: Request) -> bool:
    return r.status == 0 and "Timeout" in r.error


def outstanding(r: Request) -> tuple[float, float]:
    """When `r` was on the wire: a time-out was sent CLIENT_TIMEOUT before
    it came back; any other answer came back as it was sent (sub-second)."""
    return (r.t - CLIENT_TIMEOUT if timed_out(r) else r.t), r.t


def in_flight_on_vanished_host(fired: list[dict], r: Request) -> bool:
    """A request lost to a host that vanished (power off, link cut), which
    no console can save:
    - one nginx had already sent to the host waits for nginx's
      proxy_read_timeout (60 s): the client gives up first (a time-out
      that came back within CLIENT_TIMEOUT + 1 s of the loss);
    - one whose last try nginx made to the host gets nginx's own 504 (no
      X-Agent-Version), while the host is gone and up to GRACE s after it
      is back (seed 2 run 154). A stopped or drained unit refuses the
      connection (502): never counted here."""
    for f in (f for f in fired if f["fault"] in VANISHING):
        if timed_out(r) and f["t"] <= r.t <= f["t"] + CLIENT_TIMEOUT + 1:
            return True
        start, end = window(f)
        if r.status == 504 and not r.version and start <= r.t <= end:
            return True
    return False


def refused_by_a_host_powered_off(fired: list[dict], r: Request) -> bool:
    """nginx's own 502 (no X-Agent-Version) whose last try a powered-off
    host refused: as it shuts down its units stop before its link goes, and
    once it boots again only the units enabled at boot come back, not the
    ones a console started (blue-green's colours), until the next console
    process changes nginx (`resume`'s first traffic change, `rerouted`).
    From the power-off to the later of its repair and that change, plus
    GRACE (seed 9 run 273: the last try of a request, after two 502s of the
    bad release, refused by agent-04/green booted without it; the resume,
    started 6 s after the boot on a loaded machine, took it out at once).
    A refused connection on a host that stayed up is never excused."""
    for f in (f for f in fired if f["fault"] == "host_off"):
        start, end = window(f)
        if f.get("rerouted") is not None:
            end = max(end, f["rerouted"] + GRACE)
        if r.status == 502 and not r.version and start <= r.t <= end:
            return True
    return False


def on_degraded_link(fired: list[dict], r: Request) -> bool:
    """A failure a slow, lossy link explains, while it lasted and up to
    GRACE s after its repair: nginx's own 504 (every try timed out; no
    X-Agent-Version), or a client time-out whose request was on the wire
    inside that window. A refused connection (502) or the agent's own
    answer is never excused: the host was up and its unit answering."""
    for f in (f for f in fired if f["fault"] in DEGRADED):
        start, end = window(f)
        if r.status == 504 and not r.version and start <= r.t <= end:
            return True
        sent, back = outstanding(r)
        if timed_out(r) and back >= start and sent <= end:
            return True
    return False


def on_a_degraded_link_now(fired: list[dict], host: str) -> bool:
    """Is `host`'s link slow and lossy (DEGRADED) and not yet repaired? A
    check's probe through it may get no answer, as the console's own did
    (seed 24 run 1 at f6db700: the run ended 4, "nginx still routes to
    agent-01, which do not answer", and the check's 10 s probe of agent-01
    timed out on the same saturated link). Once repaired, never."""
    return any(f["fault"] in DEGRADED and f["host"] == host and f.get("healed") is None for f in fired)


def during_outage(fired: list[dict], r: Request) -> bool:
    """A failure the LB's outage explains: it came back after the LB went
    off, and was sent before the LB was back plus GRACE (not before the
    outage, not during a resume that followed the repair)."""
    for f in (f for f in fired if f["fault"] in OUTAGE):
        start, end = window(f)
        sent, back = outstanding(r)
        if back >= start and sent <= end:
            return True
    return False


def refused_by_a_restarted_unit(fired: list[dict], r: Request, release_retried: bool) -> bool:
    """nginx's own 502 (no X-Agent-Version) while a fault restarted a
    serving unit (health_flap), when the release answers a status nginx
    tries the next server on (`release_retried`: a bad release of 502s or
    503s): the restarting unit refused the try that came last, after the
    release's own retried answers on the others (seed 19 run 19 at aec158f:
    a 503 of the release, then this 502, 0.08 s apart, as agent-05/green
    restarted). Inside the fault's window only. With a release that answers
    well nginx's other tries succeed, so such a 502 is then never excused."""
    if not release_retried:
        return False
    for f in (f for f in fired if f["fault"] in RESTARTS):
        start, end = window(f)
        if r.status == 502 and not r.version and start <= r.t <= end:
            return True
    return False


def retried_release(release: dict) -> bool:
    """Does this release (a schedule's) answer some requests with a status nginx retries?"""
    behaviour = release.get("behaviour") or {}
    return bool(release.get("bad")) and behaviour.get("error_rate", 0) > 0 and behaviour.get("error_status") in RETRIED


def excused(fired: list[dict], r: Request, release_retried: bool = False) -> bool:
    """Is the failed request `r` explained by a fault of `fired`, inside that
    fault's window?"""
    return (in_flight_on_vanished_host(fired, r) or refused_by_a_host_powered_off(fired, r)
            or during_outage(fired, r) or on_degraded_link(fired, r)
            or refused_by_a_restarted_unit(fired, r, release_retried))


def lost_after_last_change(fired: list[dict], host: str, lb_name: str, last_change: float | None,
                           decided: float, ended: float) -> bool:
    """`host` vanished after the console process's last nginx change and
    at most LAST_CHANGE_GRACE s before the process gave its result
    (`decided`; seed 3 run 116, seed 4 run 155): its probe after the change
    (ba2db7c) may have found the host answering, and it had nothing left to
    do there. The process may take longer to end (seed 9 run 211: 10.9 s
    from its result to its exit, with two hosts lost 0.2 s before the
    result): after the result it judges nothing. A loss earlier than that,
    before a resume started, or after the process ended, is the run's to see."""
    def lost(f: dict) -> bool:  # lb_off names an agent in its schedule, but takes the LB
        return host == (lb_name if f["fault"] in OUTAGE else f["host"] if f["fault"] in VANISHING else None)
    after = last_change if last_change is not None else float("inf")
    return any(lost(f) and after <= f["t"] <= ended and decided <= f["t"] + LAST_CHANGE_GRACE for f in fired)


def sent_share(sent: int, rate: float, duration: float) -> float:
    due = rate * duration
    return sent / due if due > 0 else 1.0


def too_few_sent(sent: int, rate: float, duration: float) -> bool:
    return sent_share(sent, rate, duration) < MIN_SENT_SHARE


def names(message: str, host: str) -> bool:
    """Does `message` name `host` as a whole word ("agent-1" is not named
    by "agent-10", nor "lb" by "lb-01")?"""
    return re.search(rf"(?<![\w-]){re.escape(host)}(?![\w-])", message) is not None


def left_for_a_human(code: int, host: str, message: str) -> bool:
    """May nginx be left routing to `host`, which is down, when a run ends
    with `code` and `message`? Only when the run stopped for a human naming
    it (RUN_ENDING_EXITS): failed (4); aborted (5: seed 25 run 61, the
    host's link cut 0.03 s before the abort's last change, which kept it
    routed on a verification 0.2 s old, and the run's last probe named it:
    "nginx still routes to agent-05, which do not answer"); or paused (7:
    seed 5 run 19, the capacity guard found an old host cut off before
    draining its batch and held the run). Never after a success or a
    rollback (0, 3), which promise every routed instance answers."""
    return code in RUN_ENDING_EXITS and names(message, host)


def clean_good_run_failed(schedule: dict, fired: list[str], code: int, resume_code: int | None) -> bool:
    """A good release with nothing injected (no fault, no operator command)
    must succeed in one go."""
    return not schedule["release"]["bad"] and not fired and (code != 0 or resume_code is not None)


def routes_disagree(code: int, routed: set[str], journaled: set[str]) -> bool:
    """A run that failed, aborted or paused leaves nginx routing where its
    journal last said traffic went (its last traffic change, or the pools it
    found when it made none): what `console resume` and a human start from."""
    return code in RUN_ENDING_EXITS and routed != journaled


# -- re-judging recorded runs --------------------------------------------------------------------------

SUMMARY = re.compile(r"^(\d+) requests in ([\d.]+)s at ([\d.]+)/s")


def recheck(record: dict) -> tuple[list[str], list[str]]:
    """A runs.jsonl record judged again: (new flags, what its record cannot
    decide). A record written before the rules above kept only counts, so a
    failure set apart by an excuse then cannot be placed in a window now:
    it is listed as undecided (replay the case: `bench/soak.py --replay`)."""
    s, o = record["schedule"], record["outcome"]
    c = o["clients"]
    flags, undecided = [], []
    m = SUMMARY.match(c["summary"])
    rate, duration = (float(m[3]), float(m[2])) if m else (c.get("rate", 0.0), c.get("duration", 0.0))
    if too_few_sent(c["sent"], rate, duration):
        flags.append(f"sent {sent_share(c['sent'], rate, duration):.1%} of the requests due"
                     + (" (an LB outage in the run)" if OUTAGE & set(o["fired"]) else ""))
    if clean_good_run_failed(s, o["fired"], o["exit"], o["resume_exit"]):
        flags.append(f"a good release with nothing injected ended {o['exit']}"
                     + (f" -> {o['resume_exit']}" if o["resume_exit"] is not None else ""))
    requests = c.get("failed_requests")
    if requests is not None:  # recorded since issue 26: every excuse judged again
        fired = o.get("fired_at", [])
        bad = s["release"]["version"] if s["release"]["bad"] else None
        foreign = [Request(**r) for r in requests if not (bad and r["version"] == bad)]
        unexcused = [r for r in foreign if not excused(fired, r, retried_release(s["release"]))]
        if unexcused:
            flags.append(f"clients: {len(unexcused)} failed requests outside every fault's window")
    else:
        if c.get("in_flight_lost"):
            undecided.append(f"{c['in_flight_lost']} failures set apart as lost on a vanished host")
        if c.get("voided") and c.get("foreign"):
            undecided.append(f"{c['foreign']} failures excused by an LB outage anywhere in the run")
    return flags, undecided
