"""bench/soak_rules.py: every excuse the soak grants is bounded in time,
and each rule fails here when it is widened (pure: the real-host soak itself
is tests/sandbox/test_soak_real.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import soak_rules as rules  # noqa: E402
from soak_rules import GRACE, Request  # noqa: E402


def fault(name, t, healed=None, host="agent-03"):
    return {"fault": name, "host": host, "t": t, "healed": healed}


def timeout(t):
    return Request(t, 0, None, "ReadTimeout('')")


CUT = [fault("link_cut", 10.0, healed=40.0)]


def test_a_time_out_is_set_apart_only_when_it_was_in_flight_as_the_host_vanished():
    lost = rules.in_flight_on_vanished_host
    assert lost(CUT, timeout(12.0)) and lost(CUT, timeout(10.0 + rules.CLIENT_TIMEOUT + 1))
    assert not lost(CUT, timeout(9.9))  # came back before the loss
    assert not lost(CUT, timeout(10.0 + rules.CLIENT_TIMEOUT + 1.1))  # sent after it: nginx should not route there
    assert not lost(CUT, Request(12.0, 0, None, "ConnectError('refused')"))  # refused is not in flight


def test_nginx_504_is_set_apart_only_from_the_loss_to_its_repair_plus_grace():
    lost = rules.in_flight_on_vanished_host
    assert lost(CUT, Request(10.0, 504, None)) and lost(CUT, Request(40.0 + GRACE, 504, None))
    assert not lost(CUT, Request(9.9, 504, None))  # before the host vanished
    assert not lost(CUT, Request(40.0 + GRACE + 0.1, 504, None))  # the host was back: the console's business
    assert not lost([fault("link_cut", 10.0)], Request(30.0, 504, None))  # never repaired: the instant only
    assert not lost(CUT, Request(20.0, 504, "2.0.0"))  # the agent's own 504
    assert not lost(CUT, Request(20.0, 502, None))  # refused: a stopped or drained unit
    sshd = [fault("sshd_stop", 10.0, healed=40.0)]  # the host still serves
    assert not lost(sshd, Request(20.0, 504, None)) and not lost(sshd, timeout(12.0))


def test_an_lb_outage_excuses_only_failures_inside_it():
    off = [fault("lb_off", 10.0, healed=30.0)]
    inside = rules.during_outage
    assert inside(off, Request(10.0, 0, None, "ConnectError")) and inside(off, Request(30.0 + GRACE, 502, None))
    assert inside(off, timeout(30.0 + GRACE + rules.CLIENT_TIMEOUT))  # sent at the edge, came back after
    assert not inside(off, Request(9.9, 502, None))  # before the LB went off
    assert not inside(off, Request(30.0 + GRACE + 0.1, 502, None))  # during the resume that followed
    assert not inside(off, timeout(30.0 + GRACE + rules.CLIENT_TIMEOUT + 0.1))  # sent after the window
    assert not inside([fault("host_off", 10.0, healed=30.0)], Request(20.0, 502, None))  # an agent is not the LB


def test_a_loss_is_the_runs_to_see_unless_it_came_after_its_last_change_just_before_its_result():
    def lost(fired, host, last_change, decided, ended=None):
        return rules.lost_after_last_change(fired, host, "lb-01", last_change, decided,
                                            decided if ended is None else ended)
    off = [fault("host_off", 20.0, host="agent-03")]
    assert lost(off, "agent-03", last_change=19.0, decided=20.0 + rules.LAST_CHANGE_GRACE)
    assert not lost(off, "agent-03", last_change=21.0, decided=22.0)  # a change came after the loss
    assert not lost(off, "agent-03", last_change=19.0, decided=20.0 + rules.LAST_CHANGE_GRACE + 0.1)  # time to see it
    assert not lost(off, "agent-03", last_change=None, decided=21.0)  # no change: nothing to excuse
    assert not lost(off, "agent-03", last_change=25.0, decided=26.0)  # before a resume's change
    assert not lost(off, "agent-04", last_change=19.0, decided=20.5)  # another host
    assert lost([fault("lb_off", 20.0, host="agent-01")], "lb-01", last_change=19.0, decided=20.5)
    assert not lost([fault("sshd_stop", 20.0)], "agent-03", last_change=19.0, decided=20.5)


def test_a_loss_just_before_the_result_is_not_the_runs_even_when_the_process_ends_later():
    """Seed 9 run 211: agent-02 and agent-03 lost as blue-green's rollback
    made its last change, 0.2 s before the result; the process ended 10.9 s
    later. It is the result's time that bounds the excuse, not the exit."""
    def lost(fired, host, last_change, decided, ended):
        return rules.lost_after_last_change(fired, host, "lb-01", last_change, decided, ended)
    two = [fault("host_off", 20.5, host="agent-02"), fault("link_cut", 20.5, host="agent-03")]
    assert lost(two, "agent-02", 20.5, decided=20.7, ended=31.6) and lost(two, "agent-03", 20.5, 20.7, 31.6)
    assert not lost(two, "agent-02", 20.5, decided=20.5 + rules.LAST_CHANGE_GRACE + 0.1, ended=31.6)  # time to see it
    assert not lost([fault("host_off", 32.0, host="agent-02")], "agent-02", 20.5, decided=20.7, ended=31.6)  # after it ended


def test_a_refusal_is_excused_only_on_a_host_powered_off_until_the_resume_rerouted_it():
    """Seed 9 run 273: a request's last try refused by agent-04/green, which
    its boot did not start, until the resume's first change took it out."""
    refused = rules.refused_by_a_host_powered_off
    off = [{**fault("host_off", 10.0, healed=20.0), "rerouted": 27.0}]
    assert refused(off, Request(10.0, 502, None)) and refused(off, Request(27.0 + GRACE, 502, None))
    assert not refused(off, Request(9.9, 502, None))  # before the power-off
    assert not refused(off, Request(27.0 + GRACE + 0.1, 502, None))  # the resume had rerouted it
    assert not refused(off, Request(15.0, 502, "2.0.0"))  # the agent's own answer
    assert not refused(off, Request(15.0, 0, None, "ConnectError"))  # not nginx's answer
    no_resume = [fault("host_off", 10.0, healed=20.0)]
    assert refused(no_resume, Request(20.0 + GRACE, 502, None))
    assert not refused(no_resume, Request(20.0 + GRACE + 0.1, 502, None))
    for name in ("link_cut", "sshd_stop", "slow_lossy_link"):  # the host's units kept running
        assert not refused([{**fault(name, 10.0, healed=20.0), "rerouted": 27.0}], Request(15.0, 502, None))
    assert rules.excused(off, Request(15.0, 502, None))


def test_a_run_that_sent_less_than_90_percent_of_its_due_requests_fails():
    assert not rules.too_few_sent(900, 100.0, 10.0)
    assert rules.too_few_sent(899, 100.0, 10.0)
    assert rules.sent_share(310, 100.0, 10.0) == pytest.approx(0.31)


def test_a_host_is_named_as_a_whole_word():
    assert rules.names("failed: agent-03 unhealthy", "agent-03")
    assert rules.names("nginx still routes to agent-03, agent-04.", "agent-04")
    assert rules.names("(agent-03:8080)", "agent-03")
    assert not rules.names("failed: agent-030 unhealthy", "agent-03")
    assert not rules.names("failed: xagent-03", "agent-03")
    assert not rules.names("lb-01 unreachable", "lb")


def test_a_clean_good_run_must_succeed_in_one_go():
    good = {"release": {"bad": None}}
    assert not rules.clean_good_run_failed(good, [], 0, None)
    assert rules.clean_good_run_failed(good, [], 3, None)
    assert rules.clean_good_run_failed(good, [], 0, 0)  # left something to resume
    assert not rules.clean_good_run_failed(good, ["op_rollback"], 3, None)  # an operator asked for it
    assert not rules.clean_good_run_failed({"release": {"bad": "latency_ms"}}, [], 3, None)


def test_failed_aborted_and_paused_runs_leave_traffic_where_the_journal_says():
    journaled = {"10.0.0.1:8080", "10.0.0.2:8080"}
    for code in (4, 5, 7):
        assert not rules.routes_disagree(code, set(journaled), journaled)
        assert rules.routes_disagree(code, {"10.0.0.1:8080"}, journaled)
        assert rules.routes_disagree(code, journaled | {"10.0.0.3:8081"}, journaled)
    assert not rules.routes_disagree(3, {"10.0.0.1:8080"}, journaled)  # checked against the original instead


def record(**clients):
    base = {"sent": 1000, "failed": 0, "own": 0, "in_flight_lost": 0, "foreign": 0, "voided": False,
            "summary": "1000 requests in 10.0s at 100/s, 0 failed"}
    return {"schedule": {"seed": 1, "index": 1, "release": {"bad": None, "version": "2.1.1"}},
            "outcome": {"exit": 0, "resume_exit": None, "fired": ["link_cut"], "clients": {**base, **clients}},
            "violations": []}


def test_recheck_judges_recorded_runs_again():
    assert rules.recheck(record()) == ([], [])
    flags, _ = rules.recheck(record(sent=310, summary="310 requests in 10.0s at 100/s, 0 failed"))
    assert flags == ["sent 31.0% of the requests due"]
    _, undecided = rules.recheck(record(in_flight_lost=2, voided=True, foreign=3))  # counts only: cannot place them
    assert len(undecided) == 2
    r = record(failed_requests=[{"t": 45.0, "status": 504, "version": None, "error": ""}], failed=1)
    r["outcome"]["fired_at"] = CUT
    assert rules.recheck(r)[0] == ["clients: 1 failed requests outside every fault's window"]
    r["outcome"]["fired_at"] = [fault("link_cut", 10.0, healed=43.0)]
    assert rules.recheck(r) == ([], [])


def test_recheck_reads_a_soak_record(tmp_path):
    """The soak's CLI over a runs.jsonl: old flags beside new ones."""
    import soak
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(record(sent=310, summary="310 requests in 10.0s at 100/s, 0 failed")) + "\n")
    lines = soak.recheck_lines([str(path)])
    assert lines[2] == f"| {path} | 1 | 0 | 1 | 1 | 0 | 0 |"


def test_the_soak_judges_a_runs_clients_by_the_bounded_rules_and_records_what_recheck_needs():
    """bench/soak.py's client_checks on a load result (no hosts): an LB outage
    excuses only failures inside it, too few sent fails the run, and the
    record it writes is judged the same way again by recheck."""
    from types import SimpleNamespace

    import soak
    from load import LoadResult, Response
    t0 = 1000.0
    result = LoadResult(rate=100.0, started=t0, stopped=t0 + 60.0)
    result.responses = [Response(t0 + i * 0.01, 200, "2.0.0") for i in range(5400)]
    result.responses += [Response(t0 + 20.0, 0, None, "ConnectError"),  # inside the outage
                         Response(t0 + 50.0, 502, None)]  # after the LB was back and the grace: the console's
    result.scheduled = 6000
    run = SimpleNamespace(schedule={"release": {"bad": None, "version": "2.0.0"}}, violations=[], outcome={},
                          fired=[{"fault": "lb_off", "host": "agent-02", "t": t0 + 15.0, "healed": t0 + 30.0}])
    soak.client_checks(run, result)
    clients = run.outcome["clients"]
    assert (clients["outage"], clients["foreign"], clients["voided"]) == (1, 1, True)
    assert run.violations == ["clients: 1 failed requests not by the bad release, e.g. 502 None "]
    assert run.outcome["fired_at"] == [{"fault": "lb_off", "host": "agent-02", "t": 15.0, "healed": 30.0}]
    record = {"schedule": {**run.schedule, "seed": 1, "index": 1},
              "outcome": {**run.outcome, "exit": 0, "resume_exit": None, "fired": ["lb_off"]}}
    assert rules.recheck(record) == (["clients: 1 failed requests outside every fault's window"], [])
    few = LoadResult(rate=100.0, started=t0, stopped=t0 + 60.0, responses=result.responses[:3000], scheduled=6000)
    run.violations = []
    soak.client_checks(run, few)
    assert run.violations == ["clients: only 50% of the requests due were sent (3000 requests in 60.0s at 100/s, "
                              "0 failed, 3000 not sent)"]


def test_a_slow_lossy_link_excuses_only_nginx_504_and_time_outs_inside_it():
    slow = [fault("slow_lossy_link", 10.0, healed=40.0)]
    on = rules.on_degraded_link
    assert on(slow, Request(10.0, 504, None)) and on(slow, Request(40.0 + GRACE, 504, None))
    assert not on(slow, Request(9.9, 504, None)) and not on(slow, Request(40.0 + GRACE + 0.1, 504, None))
    assert on(slow, timeout(10.0)) and on(slow, timeout(40.0 + GRACE + rules.CLIENT_TIMEOUT))
    assert not on(slow, timeout(9.9))  # came back before the link slowed
    assert not on(slow, timeout(40.0 + GRACE + rules.CLIENT_TIMEOUT + 0.1))  # sent after the window
    assert not on(slow, Request(20.0, 502, None))  # refused: the unit, not the link
    assert not on(slow, Request(20.0, 504, "2.0.0"))  # the agent's own answer
    assert not on([fault("slow_lossy_link", 10.0)], Request(30.0, 504, None))  # never repaired: the instant only
    assert not on([fault("link_cut", 10.0, healed=40.0)], Request(20.0, 502, None))


@pytest.mark.parametrize("name", sorted(rules.EXCUSES_NOTHING | {"sshd_stop", "nginx_t_rejects"}))
def test_the_harder_faults_excuse_no_client_failure(name):
    """A full disk, someone else's edit, a kill mid-change, a jumped clock:
    nginx keeps serving what it routes to, so no failure is theirs."""
    fired = [fault(name, 10.0, healed=40.0)]
    for r in (Request(20.0, 504, None), Request(20.0, 502, None), timeout(20.0),
              Request(20.0, 0, None, "ConnectError")):
        assert not rules.excused(fired, r), (name, r)


def test_seeds_from_nine_draw_the_harder_faults_at_their_own_moments():
    import soak
    agents = [f"agent-0{i}" for i in range(1, 7)]
    old = [f for s in range(1, soak.HARDER_FROM) for i in range(100) for f in soak.schedule_for(s, i, agents)["faults"]]
    assert not {f["fault"] for f in old} & soak.HARDER and not any(f.get("together") for f in old)
    new = [f for i in range(200) for f in soak.schedule_for(soak.HARDER_FROM, i, agents)["faults"]]
    assert soak.HARDER <= {f["fault"] for f in new}
    for f in new:
        moment = (f["moment"]["kind"], f["moment"]["phase"], f["moment"]["nth"])
        assert f.get("together") or moment in soak.MOMENTS_OF.get(f["fault"], soak.MOMENTS)
    for i in range(200):  # two faults at once: one moment, two kinds
        together = [f for f in soak.schedule_for(soak.HARDER_FROM, i, agents)["faults"] if f.get("together")]
        assert len(together) in (0, 2, 4)
        for a, b in zip(together[::2], together[1::2]):
            assert a["moment"] == b["moment"] and a["fault"] != b["fault"]
    assert any(f.get("together") for f in new)
    assert rules.EXCUSES_NOTHING | rules.DEGRADED == soak.HARDER  # every new kind is judged by a rule


def test_the_managed_file_is_compared_without_someone_elses_lines():
    import soak
    mine = "upstream agent_stable {\n    server 10.0.0.1:8080;\n}\n"
    assert soak.without_foreign(mine + soak.FOREIGN + "\n" + soak.FOREIGN_BROKEN + "\n") == mine
    assert soak.without_foreign(mine + "# another comment\n") != mine


def test_a_refusal_by_a_unit_the_fault_restarted_is_excused_only_under_a_release_of_retried_errors():
    """health_flap restarts a serving unit: nginx retries its refusal on the
    next server, so a client sees nginx's own 502 only when the other tries
    got the release's own 502/503s (seed 19 run 19 at aec158f)."""
    flap = [fault("health_flap", 10.0, healed=20.0)]
    refused = rules.refused_by_a_restarted_unit
    assert refused(flap, Request(10.0, 502, None), True) and refused(flap, Request(20.0 + GRACE, 502, None), True)
    assert not refused(flap, Request(9.9, 502, None), True)  # before the restart
    assert not refused(flap, Request(20.0 + GRACE + 0.1, 502, None), True)  # after the repair's grace
    assert not refused(flap, Request(15.0, 502, None), False)  # a good release: nginx's other tries answer
    assert not refused(flap, Request(15.0, 504, None), True) and not refused(flap, timeout(15.0), True)
    assert not refused(flap, Request(15.0, 502, "2.0.0"), True)  # the agent's own 502
    assert not refused([fault("sshd_stop", 10.0, healed=20.0)], Request(15.0, 502, None), True)
    assert rules.excused(flap, Request(15.0, 502, None), release_retried=True)
    assert not rules.excused(flap, Request(15.0, 502, None))
    bad = {"bad": "error_status", "behaviour": {"error_rate": 0.19, "error_status": 503}}
    assert rules.retried_release(bad)
    assert not rules.retried_release({**bad, "behaviour": {"error_rate": 0.19, "error_status": 500}})
    assert not rules.retried_release({**bad, "behaviour": {"error_status": 502}})  # no errors drawn
    assert not rules.retried_release({"bad": None, "behaviour": {}})


def test_a_check_may_get_no_answer_only_through_a_link_still_degraded():
    """Before the operator's repair a check's probe of a host on a slow,
    lossy link may time out (seed 24 run 1 at f6db700); after it, or on any
    other host or fault, it must answer."""
    slow = {"fault": "slow_lossy_link", "host": "agent-01", "t": 5.0}
    assert rules.on_a_degraded_link_now([slow], "agent-01")
    assert not rules.on_a_degraded_link_now([{**slow, "healed": 20.0}], "agent-01")  # repaired
    assert not rules.on_a_degraded_link_now([slow], "agent-02")
    assert not rules.on_a_degraded_link_now([{**slow, "fault": "sshd_stop"}], "agent-01")


def test_a_dead_host_may_stay_routed_only_when_the_run_stopped_for_a_human_naming_it():
    """Failed, aborted or paused, naming the host (seed 25 run 61: aborted,
    "nginx still routes to agent-05, which do not answer"); never after a
    success or a rollback, nor unnamed."""
    said = "aborted: abort requested by operator; nginx still routes to agent-05, which do not answer"
    for code in (4, 5, 7):
        assert rules.left_for_a_human(code, "agent-05", said)
    for code in (0, 3, 6, -9):
        assert not rules.left_for_a_human(code, "agent-05", said)
    assert not rules.left_for_a_human(5, "agent-05", "aborted: abort requested by operator")
    assert not rules.left_for_a_human(5, "agent-0", said)  # a whole word only
