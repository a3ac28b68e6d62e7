"""The HTML report: one self-contained file (inline CSS and SVG, no script,
no external reference), readable offline and printable.

Every value from the journal is escaped: a journal holds whatever remote
hosts printed and operators typed, and the page must not run any of it.
"""
from __future__ import annotations

from collections import Counter
from html import escape

from strategies.metrics import format_value

from ..headless import describe
from . import plots
from .checklist import Status, answer
from .extract import Report
from .text import consequence, evidence

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1c2833; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #d5d8dc; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eaeded; vertical-align: top; }
th { background: #f4f6f7; } .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.banner { padding: .8em 1em; margin: 1em 0; font-weight: bold; border-radius: 4px; }
.broken { background: #c0392b; color: #fff; font-size: 1.2em; } .ok { background: #e9f7ef; color: #1e8449; }
.sim { background: #f9e79f; padding: 0 .4em; font-weight: bold; }
.pass { color: #1e8449; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
.inconclusive, .pending { color: #b9770e; font-weight: bold; }
.critical { background: #c0392b; color: #fff; padding: 0 .3em; } .important { color: #c0392b; font-weight: bold; }
.warning { color: #b9770e; }
.answered { color: #1e8449; } .partly { color: #b9770e; } .not-answerable { color: #7b7d7d; }
figure { margin: 1.2em 0; } figcaption { color: #566573; font-size: 12px; } svg { max-width: 100%; height: auto; }
code { font-size: 12px; background: #f4f6f7; padding: 0 .3em; }
"""

STATUS_CLASS = {Status.ANSWERED: "answered", Status.PARTLY: "partly", Status.NOT_ANSWERABLE: "not-answerable"}


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """`rows` hold markup (already escaped)."""
    numeric = numeric or set()
    out = ["<table><thead><tr>", *(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                                   for i, h in enumerate(head)), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _integrity(report: Report) -> str:
    i = report.integrity
    if not i.ok:
        return (f'<div class="banner broken" id="integrity">THIS JOURNAL FAILS VERIFICATION: {escape(i.message)}. '
                f"{escape(consequence(report))}</div>")
    return (f'<div class="banner ok" id="integrity">Journal verified: {escape(i.message)}; final hash '
            f"<code>{escape(i.final_hash or '')}</code></div>")


def _run(report: Report) -> str:
    run = report.run
    if run is None:
        return "<p>The journal records no run: it ended before the rollout started.</p>"
    sim = ' <span class="sim">SIMULATED fleet</span>' if run.simulated else ""
    outcome = escape(run.outcome or "NOT FINISHED")
    cls = {"succeeded": "pass", "rolled_back": "fail", "failed": "fail"}.get(run.outcome or "", "inconclusive")
    rows = [["plan", escape(run.plan)], ["operator", escape(run.operator.label())],
            ["started", escape(run.started)], ["command", f"<code>{escape(' '.join(run.argv))}</code>"],
            ["outcome", f'<span class="{cls}">{outcome}</span>'
             + (f" (exit {run.exit_code})" if run.exit_code is not None else "")
             + f" after {run.duration:.1f}s" + (f": {escape(run.message)}" if run.message else "")]]
    return (f"<p><b>{escape(run.strategy)}</b> of <b>{escape(run.service)}</b>: "
            f"{escape(', '.join(run.old_versions) or '?')} &rarr; <b>{escape(run.version)}</b> on {run.instances} "
            f"instance(s){sim}</p>" + _table(["", ""], rows))


def _steps(report: Report) -> str:
    rows = [[str(s.index), escape(s.title), f"{s.start:.1f}s", f"{s.end:.1f}s",
             escape(", ".join(f"{p} {w:g}%" for p, w in sorted(s.shares.items()))),
             f'<span class="{escape(s.verdict)}">{escape(s.verdict)}</span>' if s.verdict else ""]
            for s in report.steps]
    return _table(["step", "title", "from", "to", "traffic split it ran with", "verdict"], rows, {2, 3})


def _verdicts(report: Report) -> str:
    if not report.verdicts:
        return "<p>No analysis window was judged.</p>"
    rows = []
    for v in report.verdicts:
        needed = f"{v.seen} of {v.needed} needed" if v.needed else str(v.seen)
        rows.append([f"{v.at:.1f}s", escape(v.name),
                     f'<span class="{escape(v.verdict)}">{escape(v.verdict)}</span>' + (" (extended)" if v.extended else ""),
                     escape(needed), escape(evidence(v.values)), "<br>".join(escape(r) for r in v.reasons)])
    return _table(["at", "window", "verdict", "requests", "evidence (release vs baseline)", "reasons"], rows, {0})


def _alerts(report: Report) -> str:
    if not report.alerts:
        return "<p>No alert was raised.</p>"
    rows = [[f"{a.at:.1f}s", f'<span class="{escape(a.tier)}">{escape(a.tier)}</span>', escape(a.metric),
             escape(format_value(a.metric, a.value)), escape(format_value(a.metric, a.threshold)), escape(a.where)]
            for a in report.alerts]
    return _table(["at", "tier", "metric", "value", "threshold", "where"], rows, {0})


def _commands(report: Report) -> str:
    if not report.commands:
        return "<p>No operator command was sent.</p>"
    rows = [[f"{c.at:.1f}s", escape(c.command), escape(c.source), escape(c.who),
             "accepted" if c.accepted else "<b>refused</b>", escape(c.detail)] for c in report.commands]
    return _table(["at", "command", "source", "who", "", "detail"], rows, {0})


def _clients(report: Report) -> str:
    cl = report.clients
    if cl is None:
        return "<p>Not recorded: the run made no load balancer change.</p>"
    rate = f" ({cl.failed / cl.requests * 100:.3f}%)" if cl.requests else ""
    text = f"<p><b>{cl.failed}</b> of <b>{cl.requests}</b> client requests failed{rate}"
    if cl.hidden:
        text += f"; {cl.hidden} more failed tries were retried by nginx away from clients"
    rows = [[escape(p), str(n), str(e)] for p, (n, e) in cl.by_pool.items()]
    return text + ".</p>" + (_table(["pool", "requests sampled", "errors"], rows, {1, 2}) if rows else "")


def _timeline(report: Report) -> str:
    rows = []
    for e in report.timeline:
        text = describe(e)
        if text is not None:
            rows.append([f"{e.at:.2f}s", escape(e.kind), escape(text)])
    return _table(["at", "kind", "what happened"], rows, {0})


def _checklist(report: Report) -> str:
    rows = [[escape(a.item), f'<span class="{STATUS_CLASS[a.status]}">{escape(a.status.value)}</span>',
             escape(a.answer)] for a in answer(report)]
    return _table(["item", "", "from the journal"], rows)


def render(report: Report) -> str:
    run = report.run
    title = (f"Rollout report: {run.service} {run.version} ({run.outcome or 'not finished'})" if run
             else "Rollout report")
    figures = "".join(f'<figure id="{fid}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'
                      for fid, caption, svg in plots.all_plots(report))
    final = Counter(s.version for s in report.versions if s.end >= report.end)
    versions = ", ".join(f"{n} on {escape(str(v))}" for v, n in sorted(final.items(), key=str))
    sections = [
        ("Run", _run(report)), ("Post-deployment checklist (the article's &sect;7.4)", _checklist(report)),
        ("Plots", figures or "<p>No sample was recorded: nothing to plot.</p>"),
        ("Steps and traffic", _steps(report)), ("Verdicts, with their evidence and reasons", _verdicts(report)),
        ("Alerts", _alerts(report)), ("Operator commands: who sent what", _commands(report)),
        ("Clients", _clients(report) + (f"<p>Versions at the end: {versions}.</p>" if versions else "")),
        ("Timeline", _timeline(report)),
    ]
    body = "".join(f"<h2>{h}</h2>{content}" for h, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><h1>{escape(title)}</h1><p>From <code>{escape(report.source)}</code></p>"
            f"{_integrity(report)}{body}</body></html>\n")
