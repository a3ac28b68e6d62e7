"""A journal's header and closing record read into typed values: every
field the console writes comes back as written, and a field that is
missing or of the wrong type (an older console's journal, a hand edit)
reads as its default, never as a crash or a wrong type further on."""
import gzip
import json
from pathlib import Path

from console.journal import make_header, read_journal
from console.journal_header import Close, FileRead, Header, Operator

RECORDED = Path(__file__).resolve().parents[1] / "bench/results/2026-12-01-f9b5469/cases/seed1-run45/run.journal.jsonl.gz"


def test_a_header_the_console_writes_reads_back_field_by_field(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("strategy: rolling\n")
    record = {**make_header(["console", "--plan", str(plan)], str(plan), None, True, lambda s: s, "0.1.0"),
              "inventory_engine": "built-in", "resumes": "/var/j.jsonl"}
    header = Header.of(json.loads(json.dumps(record)))
    assert header.argv == ("console", "--plan", str(plan)) and header.simulated is True
    assert header.plan.path == str(plan) and len(header.plan.sha256) == 64 and header.plan.text == "strategy: rolling\n"
    assert header.inventory == FileRead()  # no inventory file: empty, not None
    assert header.operator.user and header.operator.host and header.started.endswith("+00:00")
    assert (header.tool_version, header.inventory_engine, header.resumes) == ("0.1.0", "built-in", "/var/j.jsonl")


def test_fields_of_the_wrong_type_read_as_their_defaults() -> None:
    header = Header.of({"argv": "console --plan p", "operator": ["root"], "simulated": "yes", "started": 5,
                        "plan": {"path": 3, "sha256": None}, "inventory": "inv.yaml"})
    assert header == Header()
    assert Header.of({"argv": ["console", 7, "--headless"]}).argv == ("console", "--headless")
    assert Operator.of({"user": "ana"}).label() == "ana@?"
    assert Close.of({"outcome": "succeeded", "exit_code": True, "records": "12"}) == Close(outcome="succeeded")
    assert Close.of({"outcome": "aborted", "exit_code": 5, "records": 40}) == Close("aborted", 5, 40)


def test_a_recorded_journal_reads_its_header_and_close(tmp_path: Path) -> None:
    path = tmp_path / "run.journal.jsonl"
    path.write_bytes(gzip.decompress(RECORDED.read_bytes()))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    written_header = next(r for r in lines if r.get("type") == "header")
    written_close = next((r for r in lines if r.get("type") == "close"), None)
    journal = read_journal(path)
    assert journal.header is not None
    assert journal.header.plan.sha256 == written_header["plan"]["sha256"]
    assert journal.header.operator.user == written_header["operator"]["user"]
    assert journal.header.argv == tuple(written_header["argv"])
    if written_close is None:
        assert journal.close is None
    else:
        assert journal.close == Close.of(written_close) and journal.close.outcome == written_close["outcome"]
