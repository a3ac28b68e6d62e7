"""Figures generated, not typed (issue 26): every table of figures in
bench/RESULTS.md and bench/SOAK.md is what bench/render_figures.py makes of
the raw files under bench/results, and a table edited by hand, or left
behind by a new raw file, fails here."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import render_figures  # noqa: E402


@pytest.mark.parametrize("doc", render_figures.DOCS, ids=lambda p: p.name)
def test_every_table_is_what_the_raw_files_give(doc):
    assert render_figures.differing(doc) == [], \
        f"{doc.name}: run `python3 bench/render_figures.py` and review the diff"


def test_every_block_is_used_and_every_table_is_a_block():
    used = [name for doc in render_figures.DOCS for name in render_figures.blocks_in(doc.read_text())]
    assert sorted(used) == sorted(render_figures.BLOCKS)
    for doc in render_figures.DOCS:  # a table of figures outside a block was typed by hand
        outside = render_figures.MARK.sub("", doc.read_text())
        assert [line for line in outside.splitlines() if line.startswith("|")] == [], doc.name


def test_an_edited_figure_is_caught(tmp_path, monkeypatch):
    doc = tmp_path / "RESULTS.md"
    text = render_figures.DOCS[0].read_text()
    doc.write_text(text.replace("| wall time | 10.99 s", "| wall time | 9.99 s", 1))
    assert render_figures.differing(doc) == ["vs-ansible-50-0d59498"]
    monkeypatch.setattr(render_figures, "DOCS", [doc])
    assert render_figures.main(["--check"]) == 1
    assert render_figures.main([]) == 0 and doc.read_text() == text  # rendered back from the raw file


SITTING = """\
# vs_ansible  2026-12-06 19:30:01 UTC
round 1 console  wall 10.00s cpu 2.00s rc 0 load avg 3.00 versions ['2.0.0'] load 500 req / 0 failed
  wall 10.00, start-up + exit 1.50, ssh set-up 1.00
round 1 console@against wall 12.00s cpu 2.00s rc 0 load avg 4.00 versions ['2.0.0'] load 600 req / 0 failed
  wall 12.00, start-up + exit 2.00, ssh set-up 1.00
round 1 ansible  wall 80.00s cpu 20.00s rc 0 load avg 5.00 versions ['2.0.0'] load 4000 req / 0 failed
round 1 baseline inherent 6.00s (restart [0.5])
round 2 ansible  wall 90.00s cpu 20.00s rc 0 load avg 6.00 versions ['2.0.0'] load 4500 req / 0 failed
round 2 console@against wall 15.00s cpu 2.00s rc 4 load avg 7.00 versions ['1.0.0', '2.0.0'] load 700 req / 0 failed
  stderr: refused
round 2 console  wall 9.00s cpu 2.00s rc 0 load avg 8.00 versions ['2.0.0'] load 450 req / 0 failed
  wall 9.00, start-up + exit 1.00, ssh set-up 1.00
round 2 baseline inherent 5.00s (restart [0.5])
"""


def test_every_round_of_a_sitting_is_shown_in_its_order(tmp_path, monkeypatch):
    """The per-round table: each run's wall with the console's start-up
    apart, the ratios of that round alone, a failed run named, not timed
    (and no this / against for its round), and the load as each run began."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "vs_ansible.txt").write_text(SITTING)
    monkeypatch.setattr(render_figures, "RESULTS", tmp_path)
    assert render_figures.vs_ansible_per_round("s/vs_ansible.txt").splitlines() == [
        "| round | order | console (start-up + exit) | console, --against tree | Ansible | Ansible / console "
        "| this / against | inherent | load avg at each run's start |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| 1 | this, against, Ansible | 10.00 s (1.50) | 12.00 s (2.00) | 80.00 s | 8.00 x | 0.83 x | 6.00 s "
        "| 3.0, 4.0, 5.0 |",
        "| 2 | Ansible, against, this | 9.00 s (1.00) | failed | 90.00 s | 10.00 x | n/a | 5.00 s "
        "| 6.0, 7.0, 8.0 |"]
    # the medians' table takes this tree's console rounds only, each with its own start-up
    assert "| console wall without start-up + exit | 8.25 s (8.00-8.50, n=2) |" in \
        render_figures.vs_ansible_rounds(["s/vs_ansible.txt"])


BREAKDOWN = """\
console:
| | console | ansible | ansible / console |

console wall time, where it goes (median of 3 run(s), seconds):
  wall                                10.000
  nginx changes                        2.000  (11 verified changes, 0.182 s each)
  nginx changes by step (summed over the changes; marker and old-worker wait run side by side):
    marker | old workers               1.200

console@against:
| | console | ansible | ansible / console |

console wall time, where it goes (median of 2 run(s), seconds):
  wall                                12.000
  nginx changes                        2.500  (11 verified changes, 0.227 s each)

safety steps performed | console | ansible playbook (bench/ansible/rolling.yml)
  rollout lock on the LB (one rollout per upstream)          | yes     | no
"""


def test_where_the_time_goes_is_shown_per_tree(tmp_path, monkeypatch):
    """Each tree's breakdown in its own column, a term one tree lacks left
    empty, the safety list after it not read as a term."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "vs_ansible.txt").write_text(BREAKDOWN)
    monkeypatch.setattr(render_figures, "RESULTS", tmp_path)
    assert render_figures.vs_ansible_breakdown("s/vs_ansible.txt").splitlines() == [
        "| term (seconds, median) | this tree (n=3) | the --against tree (n=2) |",
        "| --- | --- | --- |",
        "| wall | 10.000 | 12.000 |",
        "| nginx changes | 2.000 (11 verified changes, 0.182 s each) | 2.500 (11 verified changes, 0.227 s each) |",
        "| nginx step: marker \\| old workers | 1.200 |  |"]


def test_each_printed_table_is_named_by_its_tree(tmp_path, monkeypatch):
    """With --against the sitting prints two tables alike but for the tree:
    each goes under its name, the --against tree by its commit, and the
    before/after line follows."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "vs_ansible.txt").write_text(
        "console (against) from /tmp/old at commit 601923a Some subject\n"
        "console:\n| | console | ansible |\n|---|---|---|\n| wall time | 10 s | 80 s |\n\n"
        "console@against:\n| | console | ansible |\n|---|---|---|\n| wall time | 12 s | 80 s |\n\n"
        "this / against, console wall: per round 0.83 x (n=1); ratio of the medians 0.833x (below 1: this is faster)\n")
    monkeypatch.setattr(render_figures, "RESULTS", tmp_path)
    assert render_figures.vs_ansible_tables("s/vs_ansible.txt").split("\n\n") == [
        "This tree against Ansible, the same rounds:",
        "| | console | ansible |\n|---|---|---|\n| wall time | 10 s | 80 s |",
        "The --against tree (601923a) against Ansible, the same rounds:",
        "| | console | ansible |\n|---|---|---|\n| wall time | 12 s | 80 s |",
        "This tree / the --against tree, console wall: per round 0.83 x (n=1); ratio of the medians 0.833x "
        "(below 1: this is faster)."]
