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
