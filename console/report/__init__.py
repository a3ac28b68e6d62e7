"""`console report JOURNAL`: what a recorded rollout did, for people who
were not there (an auditor, a release review): a plain-text summary, or one
self-contained HTML page with plots.

`extract` takes the facts from the journal (pure data), `checklist` answers
the article's post-deployment checklist from them, and `text`, `html` and
`plots` only format. The subcommand itself is console/report_cli.py.
"""
