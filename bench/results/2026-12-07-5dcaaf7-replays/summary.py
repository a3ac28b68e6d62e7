"""Before/after table of the replayed cases: {before,after}/<case>/runs.jsonl(.gz) beside this file.
Run from the repository root: python3 bench/results/2026-12-07-5dcaaf7-replays/summary.py"""
import json, pathlib, sys
sys.path.insert(0, "bench")
from _common import read_text
root = pathlib.Path(__file__).resolve().parent
cases = sorted({p.name for side in ("before", "after") for p in (root / side).iterdir()})
rows, tot = [], {s: dict(done=0, viol=0, failed=0, foreign=0, sent=0, req=0) for s in ("before", "after")}
same_exits = differ = 0
diffs = []
for c in cases:
    name = c
    got = {}
    for side in ("before", "after"):
        f = root / side / name / "runs.jsonl"
        if not f.exists() and not f.with_name("runs.jsonl.gz").exists():
            continue
        r = json.loads(read_text(f).splitlines()[-1])
        o = r["outcome"]; cl = o.get("clients") or {}
        got[side] = (o.get("exit"), o.get("resume_exit"), r["violations"], cl.get("foreign", 0), cl.get("sent_share"), cl.get("sent", 0))
        t = tot[side]; t["done"] += 1; t["viol"] += bool(r["violations"]); t["foreign"] += cl.get("foreign", 0); t["req"] += cl.get("sent", 0)
    if len(got) == 2:
        if got["before"][:2] == got["after"][:2]:
            same_exits += 1
        else:
            differ += 1; diffs.append((name, got["before"][:2], got["after"][:2]))
    rows.append((name, got))
for side, t in tot.items():
    print(f"{side}: {t['done']} replayed, {t['viol']} with violations, {t['foreign']} failed requests nothing excuses, {t['req']:,} requests sent")
print(f"pairs with the same exits (run -> resume): {same_exits}; different: {differ}")
for d in diffs:
    print("  differ:", *d)
for name, got in rows:
    for side, g in got.items():
        if g[2]:
            print(f"  {side} {name}: exits {g[0]} -> {g[1]}; {'; '.join(g[2])}")
