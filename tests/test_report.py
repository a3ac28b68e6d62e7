"""`console report JOURNAL`: the facts it takes from real journals of
SIMULATED-fleet runs, the text summary, the checklist's honesty, and
one-line refusals of bad input. (The HTML page in a real browser:
tests/test_report_browser.py.)"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.journal import read_journal, verify
from console.report.checklist import Status, answer
from console.report.extract import extract
from control_helpers import HeadlessRun, cli, control_env
from simfleet import write_inventory, write_plan

ROOT = Path(__file__).resolve().parent.parent


def run_console(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def bad_canary(tmp_path_factory) -> Path:
    """The README's canary with a release that fails 1 request in 12: caught, rolled back."""
    journal = tmp_path_factory.mktemp("bad") / "canary-bad.jsonl"
    proc = run_console("--plan", "examples/canary.yaml", "--version", "2.1.0-bad", "--headless",
                       "--time-scale", "100", "--record", str(journal))
    assert proc.returncode == 3, proc.stderr
    return journal


def report_of(path: Path):
    return extract(read_journal(path), verify(path), source=str(path))


def test_facts_of_a_rolled_back_canary(bad_canary):
    events = read_journal(bad_canary).events
    r = report_of(bad_canary)
    assert r.integrity.ok and r.integrity.closed
    assert r.run is not None and (r.run.strategy, r.run.version, r.run.old_versions) == ("canary", "2.1.0-bad", ("1.0.0",))
    assert r.run.outcome == "rolled_back" and r.run.exit_code == 3
    # every closing or failing verdict, with the findings that decided it
    gates = [e for e in events if e.kind == "gate" and (e.final or e.verdict == "fail")]
    assert [(v.name, v.verdict) for v in r.verdicts] == [(g.name, g.verdict) for g in gates]
    fail = r.verdicts[-1]
    assert fail.verdict == "fail" and fail.findings[0]["metric"] == "error_rate"
    assert fail.values["error_rate"] > fail.values["baseline_error_rate"]
    # the split the canary ran with, not the rollback's
    assert r.steps[-1].verdict == "fail" and r.steps[-1].shares["canary"] == 1.0
    assert r.splits[-1].shares == {"stable": 100.0}
    # agent-01 went to the bad release and back; the others never moved
    spans = [(s.version) for s in r.versions if s.instance == "agent-01"]
    assert spans == ["1.0.0", "2.1.0-bad", "1.0.0"]
    assert {s.version for s in r.versions if s.instance == "agent-02"} == {"1.0.0"}
    finished = next(e for e in events if e.kind == "run_finished")
    assert r.clients is not None and (r.clients.requests, r.clients.failed) == (
        finished.clients["requests"], finished.clients["failed"])
    assert [a.metric for a in r.alerts] == [e.metric for e in events if e.kind == "alert"]
    assert r.samples and all(s.values for s in r.samples)


def test_text_report_says_what_happened(bad_canary):
    proc = run_console("report", str(bad_canary))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("journal verified: ")
    assert "canary of agent: 1.0.0 -> 2.1.0-bad on 10 instance(s) [SIMULATED fleet]" in out
    assert "outcome: rolled_back (exit 3)" in out
    assert ": FAIL" in out and "reason: error_rate" in out and "evidence: " in out
    assert "IMPORTANT error_rate" in out
    assert "[answered] Monitoring and verification" in out
    assert "[not answerable from the journal] Regression testing" in out
    assert "VERSIONS AT THE END: 10 on 1.0.0" in out


def test_checklist_answers_only_what_the_journal_holds(bad_canary):
    r = report_of(bad_canary)
    by_item = {a.item: a for a in answer(r)}
    assert by_item["Regression testing"].status == Status.NOT_ANSWERABLE
    assert by_item["Documentation update"].status == Status.NOT_ANSWERABLE
    # stopped on errors, often before the release's latency warm-up was over: performance is
    # answered in part exactly when some window judged the release's latency
    judged_latency = any(v.values.get("p95_latency") is not None for v in r.verdicts)
    assert by_item["Performance testing"].status == (Status.PARTLY if judged_latency else Status.NOT_ANSWERABLE)
    assert by_item["Health check after deployment"].status == Status.ANSWERED
    assert "rolled_back" in by_item["Monitoring and verification"].answer
    # a window that judged latency answers it in part (live traffic, no load test)
    v = r.verdicts[-1]
    r.verdicts[-1] = dataclasses.replace(v, values={**v.values, "p95_latency": 0.25, "baseline_p95_latency": 0.2})
    perf = {a.item: a for a in answer(r)}["Performance testing"]
    assert perf.status == Status.PARTLY and "p95 250" in perf.answer and "baseline" in perf.answer


def test_a_tampered_journal_is_reported_with_that_said_first(bad_canary, tmp_path):
    lines = bad_canary.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"gate"' in line and b'"verdict":"fail"' in line)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(b"".join(lines[:n] + [lines[n].replace(b'"verdict":"fail"', b'"verdict":"pass"')]
                                  + lines[n + 1:]))
    proc = run_console("report", str(tampered))
    assert proc.returncode == 4
    first = proc.stdout.splitlines()[0]
    assert first.startswith("!!! JOURNAL FAILS VERIFICATION") and f":{n + 1}: hash mismatch" in first
    assert "What follows may not be what was recorded" in first
    page = tmp_path / "tampered.html"
    proc = run_console("report", str(tampered), "--html", str(page))
    assert proc.returncode == 4 and "FAILS verification" in proc.stdout
    assert 'class="banner broken" id="integrity">THIS JOURNAL FAILS VERIFICATION' in page.read_text()


def paused_canary(tmp_path: Path) -> tuple[dict, HeadlessRun, Path]:
    """A SIMULATED canary run in a child process, waiting at its manual
    gate: (its environment, the run, its journal)."""
    env = control_env(tmp_path)
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary", canary={
        "sample_interval": "2s", "steps": [{"set_weight": 25}, {"pause": None}, {"set_weight": 100}]})
    journal = tmp_path / "j.jsonl"
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion", "--record", str(journal))
    try:
        run.wait_for(lambda e: e["kind"] == "phase" and e["phase"] == "paused", "the pause step")
    except BaseException:
        run.kill()
        raise
    return env, run, journal


def test_a_cut_journal_is_reported_as_cut_not_as_a_crash(bad_canary, tmp_path):
    """Whole records with the tail removed after they were written: the
    sealed head knows more records, so the report does not vouch for it."""
    lines = bad_canary.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"phase"' in line and b'"phase":"rolling back"' in line)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:n]))
    proc = run_console("report", str(cut))
    assert proc.returncode == 4
    first = proc.stdout.splitlines()[0]
    assert first.startswith("!!! JOURNAL FAILS VERIFICATION") and f":{n + 1}: cut" in first
    assert "What follows may not be what was recorded" in first


def test_a_session_that_stopped_writing_is_reported_as_far_as_it_went(tmp_path):
    """A console killed mid-run (SIGKILL: no closing record): verification
    fails (as `console audit verify` says), but nothing was altered, and the
    report says so and shows what there is."""
    env, run, journal = paused_canary(tmp_path)
    run.kill()
    proc = subprocess.run([sys.executable, "-m", "console", "report", str(journal)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "no closing record" in first and "Every record it has is intact" in first
    assert "outcome: NOT FINISHED" in proc.stdout


def _one_line_error(proc: subprocess.CompletedProcess, where: str, what: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"console report: error: {where}") and what in lines[0], lines[0]


def test_bad_input_is_refused_in_one_line_naming_file_and_line(bad_canary, tmp_path):
    data = bad_canary.read_bytes()
    lines = data.splitlines(keepends=True)
    plan = ROOT / "examples" / "canary.yaml"
    _one_line_error(run_console("report", str(plan)), f"{plan}:", "is not JSON")
    _one_line_error(run_console("report", str(tmp_path / "nowhere.jsonl")), f"{tmp_path}/nowhere.jsonl", "no such file")
    _one_line_error(run_console("report", str(tmp_path)), f"{tmp_path}", "is a directory")
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"".join(lines[:20]) + lines[20][:50])
    _one_line_error(run_console("report", str(truncated)), f"{truncated}:21:", "truncated")
    newer = tmp_path / "newer.jsonl"
    header = json.loads(lines[0])
    header["schema"] = 2
    newer.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines[1:]))
    _one_line_error(run_console("report", str(newer)), f"{newer}:1:", "journal schema 2")
    alien = tmp_path / "alien.jsonl"
    record = json.loads(lines[5])
    record["event"]["kind"] = "teleported"
    alien.write_bytes(b"".join(lines[:5]) + json.dumps(record).encode() + b"\n" + b"".join(lines[6:]))
    _one_line_error(run_console("report", str(alien)), f"{alien}:6:", "unknown event kind 'teleported'")
    missing = tmp_path / "missing-field.jsonl"
    record = json.loads(lines[5])
    record["event"].pop(next(k for k in record["event"] if k not in ("kind", "at")))
    missing.write_bytes(b"".join(lines[:5]) + json.dumps(record).encode() + b"\n" + b"".join(lines[6:]))
    _one_line_error(run_console("report", str(missing)), f"{missing}:6:", "not an event this console reads")
    replayed = run_console("replay", "--headless", str(missing))  # replay reads journals the same way
    assert replayed.returncode == 2 and replayed.stderr.startswith(f"console replay: error: {missing}:6: ")
    assert "Traceback" not in replayed.stderr
    events_only = tmp_path / "events.jsonl"  # JSON Lines, but events, not a journal
    events_only.write_text("".join(json.dumps(json.loads(line)["event"]) + "\n" for line in lines[1:-1]))
    _one_line_error(run_console("report", str(events_only)), f"{events_only}:1:", "no journal header")


def test_html_without_matplotlib_is_one_line(bad_canary, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from console.cli import main; "
            f"sys.exit(main(['report', {str(bad_canary)!r}, '--html', {str(tmp_path / 'r.html')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "console report: error: --html: the HTML report draws with matplotlib: "
        "pip install 'rollout-console[report]'")
    assert not (tmp_path / "r.html").exists()


def test_who_sent_which_command(tmp_path):
    """A promote sent from another process over the control socket is
    reported with the sender's user and pid."""
    env, run, journal = paused_canary(tmp_path)
    try:
        sent = subprocess.Popen([sys.executable, "-m", "console", "promote"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = sent.communicate(timeout=120)
        assert sent.returncode == 0, err
        assert run.finish() == 0
    finally:
        run.kill()
    r = report_of(journal)
    (command,) = r.commands
    assert command.command == "promote" and command.accepted and command.source.startswith("socket:")
    user = command.source.split(":", 1)[1]
    assert command.who.startswith(f"{user} (pid {sent.pid}")
    text = cli(env, "report", str(journal))
    assert text.returncode == 0 and f"promote from socket:{user} by {user} (pid {sent.pid}" in text.stdout


def test_journal_text_never_becomes_markup(bad_canary, tmp_path):
    """A journal holds what hosts printed and operators typed: on the page it is text."""
    lines = bad_canary.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"notice"' in line and b'"level":"error"' in line)
    record = json.loads(lines[n])
    record["event"]["message"] = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_bytes(b"".join(lines[:n]) + json.dumps(record).encode() + b"\n" + b"".join(lines[n + 1:]))
    page = tmp_path / "hostile.html"
    proc = run_console("report", str(hostile), "--html", str(page))
    assert proc.returncode == 4  # edited, so it fails verification; it is still reported
    html = page.read_text()
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_traffic_shares_by_strategy():
    from console.report.extract import shares
    from strategies.events import TrafficChanged

    def change(pools, weights=None, serving=""):
        return TrafficChanged(generation="g", pools=pools, weights=weights or {}, duration=0.0, serving=serving)

    # canary: the weighted pool, the serving pool takes the rest
    assert shares(change({"stable": ["a", "b"], "canary": ["c"]}, {"canary": 5.0}, "stable")) == (
        {"canary": 5.0, "stable": 95.0}, True)
    # blue-green: the serving colour takes everything, however many backends the idle one has
    assert shares(change({"blue": ["a"], "green": ["b", "c"]}, serving="green")) == ({"green": 100.0}, True)
    # unweighted pools (rolling): round robin, so by backend count
    assert shares(change({"old": ["a", "b", "c"], "new": ["d"]})) == ({"old": 75.0, "new": 25.0}, False)
    assert shares(change({})) == ({}, False)
