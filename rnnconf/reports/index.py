"""The index of a report root: ``root/index.md`` and ``root/index.html`` over every ``root/<spec>/<target>/``.

Summary first (targets pass / fail / incomplete, then per spec: which targets pass and each failing one's worst
failure class), then one row per target, failures first (the HTML table also sorts by any column on a click: a few
lines of inline script; without script the static order stands), each failing target with its first reason.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .model import as_float

OUTCOME_ORDER = {"fail": 0, "incomplete": 1, "pass": 2}
BAD = ("failed", "errored", "crashed", "uncallable", "not-run")
CLASS_ORDER = ("defect", "dtype-contract", "precision")


def _rows(root: Path) -> list[dict]:
    rows = []
    for p in sorted(root.glob("*/*/report.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            s = doc["summary"]
        except (OSError, ValueError, KeyError):
            continue
        bad = [v for v in doc.get("verdicts", []) if v.get("status") in BAD and v.get("required", True)]
        first = next((v for v in bad if v.get("status") != "not-run"), bad[0] if bad else None)
        classes = [v.get("failure_class") or "defect" for v in bad]
        worst = min(classes, key=lambda c: CLASS_ORDER.index(c) if c in CLASS_ORDER else len(CLASS_ORDER)) \
            if classes else None
        rows.append({"doc": doc, "s": s, "rel": p.parent.relative_to(root).as_posix(), "first": first,
                     "worst_class": worst, "spec": doc["spec"]["id"], "name": doc["target"]["name"]})
    rows.sort(key=lambda r: (OUTCOME_ORDER.get(r["s"]["outcome"], 3), r["spec"], r["name"]))
    return rows


def _reason(v) -> str:
    if v is None:
        return ""
    text = " ".join(str(v.get("reason") or "").split())
    text = text if len(text) <= 200 else text[:199] + "…"
    cls = f"[{v['failure_class']}] " if v.get("failure_class") else ""
    return f"{cls}{v['prop']} ({v['dtype']}, {v['status']}): {text}"


def _per_spec(rows) -> list[tuple[str, list, list]]:
    specs: dict[str, tuple[list, list]] = {}
    for r in rows:
        ok, bad = specs.setdefault(r["spec"], ([], []))
        if r["s"]["outcome"] == "pass":
            ok.append(r["name"])
        else:
            bad.append((r["name"], r["s"]["outcome"], r["worst_class"]))
    return [(k, *specs[k]) for k in sorted(specs)]


def _totals(rows) -> str:
    n_fail = sum(1 for r in rows if r["s"]["outcome"] == "fail")
    n_inc = sum(1 for r in rows if r["s"]["outcome"] == "incomplete")
    return f"{len(rows)} targets: {len(rows) - n_fail - n_inc} pass, {n_fail} fail, {n_inc} incomplete."


def _markdown(rows) -> str:
    md = ["# rnnconf conformance reports", "", f"**{_totals(rows)}**", "",
          "Skipped (not judged here) never counts as passed: a grey badge means incomplete.", "",
          "| spec | passing targets | not passing (outcome, worst class) |", "|---|---|---|"]
    for spec, ok, bad in _per_spec(rows):
        md.append(f"| {spec} | {', '.join(f'`{n}`' for n in ok) or '—'} | "
                  f"{', '.join(f'`{n}` ({o}' + (f', {c})' if c else ')') for n, o, c in bad) or '—'} |")
    md += ["", "| spec | target | kind | badge | passed / required | failed | errored | skipped | n/a | time | "
               "first failure | report |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        doc, s, c, rel = r["doc"], r["s"], r["s"]["counts"], r["rel"]
        dur = as_float(doc.get("duration_s")) or 0.0
        reason = _reason(r["first"]).replace("|", "\\|")
        md.append(f"| {r['spec']} | `{r['name']}` | {doc['target']['kind']} | ![badge]({rel}/badge.svg) | "
                  f"{s['required_passed']}/{s['required_total']} | {c['failed']} | "
                  f"{c['errored'] + c.get('crashed', 0) + c.get('uncallable', 0)} | {c['skipped']} | "
                  f"{c['not-applicable']} | {dur:.1f} s | {reason} | "
                  f"[html]({rel}/report.html) · [md]({rel}/report.md) |")
    return "\n".join(md) + "\n"


_SORT_JS = """<script>
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const tb = th.closest('table').tBodies[0], asc = th.dataset.asc !== '1';
  const key = tr => tr.children[i].dataset.k ?? tr.children[i].textContent.trim();
  [...tb.rows].sort((a, b) => (asc ? 1 : -1) * key(a).localeCompare(key(b), undefined, {numeric: true}))
    .forEach(tr => tb.appendChild(tr));
  th.dataset.asc = asc ? '1' : '0';
}));
</script>"""


def _html(rows) -> str:
    e = html.escape
    spec_rows = []
    for spec, ok, bad in _per_spec(rows):
        good = ", ".join(f"<code>{e(n)}</code>" for n in ok) or "—"
        nots = ", ".join(f"<code>{e(n)}</code> ({e(o)}" + (f", <b>{e(c)}</b>)" if c else ")") for n, o, c in bad)
        spec_rows.append(f"<tr><td>{e(spec)}</td><td>{good}</td><td>{nots or '—'}</td></tr>")
    trs = []
    for r in rows:
        doc, s, c, rel = r["doc"], r["s"], r["s"]["counts"], r["rel"]
        dur = as_float(doc.get("duration_s")) or 0.0
        errs = c["errored"] + c.get("crashed", 0) + c.get("uncallable", 0)
        trs.append(f"<tr class='{e(s['outcome'])}'><td data-k='{OUTCOME_ORDER.get(s['outcome'], 3)}'>"
                   f"{e(s['outcome'])}</td><td>{e(r['spec'])}</td><td><code>{e(r['name'])}</code></td>"
                   f"<td>{e(doc['target']['kind'])}</td>"
                   f"<td><img src='{e(rel)}/badge.svg' alt='{e(s['badge']['message'])}'></td>"
                   f"<td>{s['required_passed']}/{s['required_total']}</td><td>{c['failed']}</td><td>{errs}</td>"
                   f"<td>{c['skipped']}</td><td>{c['not-applicable']}</td><td data-k='{dur:09.1f}'>{dur:.1f} s</td>"
                   f"<td class='why'>{e(_reason(r['first']))}</td>"
                   f"<td><a href='{e(rel)}/report.html'>report</a></td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rnnconf conformance reports</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:.6em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
table.sortable th{{cursor:pointer;background:#f6f8fa}}
table.sortable td:nth-child(n+6):nth-child(-n+11){{text-align:right}}
tr.fail{{background:#fdecea}} tr.incomplete{{background:#f4f4f4}} img{{vertical-align:middle}}
td.why{{font-size:12px;max-width:40em}} .summary{{font-size:1.2em}}
</style></head><body>
<h1>rnnconf conformance reports</h1>
<p class="summary"><b>{e(_totals(rows))}</b></p>
<p>Skipped (not judged here) never counts as passed: a grey badge means incomplete.</p>
<h2>Per spec</h2>
<table><thead><tr><th>spec</th><th>passing targets</th><th>not passing (outcome, worst failure class)</th></tr>
</thead><tbody>
{chr(10).join(spec_rows)}
</tbody></table>
<h2>Targets</h2>
<p>Failures first; click a column header to sort.</p>
<table class="sortable"><thead><tr><th>outcome</th><th>spec</th><th>target</th><th>kind</th><th>badge</th>
<th>passed / required</th><th>failed</th><th>errored</th><th>skipped</th><th>n/a</th><th>time</th>
<th>first failure</th><th>report</th></tr></thead><tbody>
{chr(10).join(trs)}
</tbody></table>
{_SORT_JS}
</body></html>
"""


def write_index(root) -> dict[str, Path]:
    """Write ``root/index.md`` and ``root/index.html`` (atomically); returns their paths."""
    root = Path(root)
    rows = _rows(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {"md": root / "index.md", "html": root / "index.html"}
    for k, text in (("md", _markdown(rows)), ("html", _html(rows))):
        tmp = paths[k].with_suffix(paths[k].suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, paths[k])
    return paths
