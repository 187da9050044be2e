"""Rendering a report document: Markdown, one self-contained HTML page, and a shields-style SVG badge.

Renderers only display what the document says (the badge colour and message come from ``doc["summary"]``, decided by
:func:`rnnconf.reports.model.summarize`).  The HTML page uses inline CSS, inline SVG and ``data:`` images (the
matplotlib plots of :mod:`.plots`) only: no script, no fonts, no remote resource of any kind.
"""
from __future__ import annotations

import html
import json
import math

from . import plots as _plots
from .model import as_float

STATUS_ORDER = ("uncallable", "crashed", "failed", "errored", "not-run", "skipped", "passed", "not-applicable")
BAD_STATUSES = ("failed", "errored", "crashed", "uncallable", "not-run")
DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16")
STATUS_WORD = {"passed": "passed", "failed": "FAILED", "errored": "ERRORED", "skipped": "skipped (not judged)",
               "not-applicable": "n/a", "crashed": "CRASHED", "uncallable": "UNCALLABLE", "not-run": "not run"}
STATUS_ICON = {"passed": "✅", "failed": "❌", "errored": "💥", "skipped": "⏭️", "not-applicable": "➖",
               "crashed": "💀", "uncallable": "🚫", "not-run": "⏸️"}
BADGE_HEX = {"green": "#4c1", "red": "#e05d44", "lightgrey": "#9f9f9f"}
DTYPE_COLORS = {"float64": "#4c72b0", "float32": "#dd8452", "float16": "#55a868", "bfloat16": "#8172b3"}
EXTRA_COLORS = ("#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")
SKIP_BODY = ("A skipped verdict was not judged here (for example a dtype this backend cannot run), so it never counts "
             "as a pass and it keeps the badge from being green.")
SKIP_NOTE = "Skipped ≠ passed. " + SKIP_BODY


# ---- small formatting helpers ------------------------------------------------------------------------------------

def fmt_num(x) -> str:
    f = as_float(x)
    if f is None:
        return "—"
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if f == 0:
        return "0"
    if abs(f) < 1e-3 or abs(f) >= 1e4:
        return f"{f:.3e}"
    return f"{f:.4g}"


def fmt_seconds(s) -> str:
    f = as_float(s)
    if f is None:
        return "—"
    if f < 1:
        return f"{f * 1000:.0f} ms"
    if f < 120:
        return f"{f:.1f} s"
    m, sec = divmod(int(round(f)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def verdict_ratio(v: dict) -> float | None:
    """The worst error/bound ratio a verdict saw: its running worst, or the failing example's observed/bound when
    that is larger (the runner records the worst over examples that passed).  ``None`` when nothing was judged."""
    if v["status"] in ("skipped", "not-applicable"):
        return None
    r = as_float(v.get("worst_ratio"))
    obs, bnd = as_float(v.get("observed")), as_float(v.get("bound"))
    if obs is not None and bnd is not None:
        q = _ratio(obs, bnd)
        if q is not None and (r is None or math.isnan(q) or q > r):
            r = q
    if r is not None and r == 0 and not v.get("examples"):
        return None
    return r


def _ratio(obs: float, bnd: float) -> float | None:
    if math.isnan(obs) or math.isnan(bnd):
        return math.nan
    if bnd > 0:
        return obs / bnd if not math.isinf(bnd) else 0.0
    return math.inf if obs > 0 else None


def dtype_key(d: str):
    return (DTYPE_ORDER.index(d), d) if d in DTYPE_ORDER else (len(DTYPE_ORDER), d)


def dtype_color(d: str, all_dtypes: list[str]) -> str:
    if d in DTYPE_COLORS:
        return DTYPE_COLORS[d]
    others = [x for x in all_dtypes if x not in DTYPE_COLORS]
    return EXTRA_COLORS[others.index(d) % len(EXTRA_COLORS)] if d in others else EXTRA_COLORS[0]


def _ordered(items, key=None):
    seen, out = set(), []
    for x in items:
        k = key(x) if key else x
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


def _outcome_line(doc: dict) -> tuple[str, str]:
    s = doc["summary"]
    R, P = s["required_total"], s["required_passed"]
    fails, errs, skips = s.get("required_failed", 0), s.get("required_errored", 0), s.get("required_skipped", 0)
    if s["outcome"] == "pass":
        return "PASS", f"all {R} required verdicts passed"
    if s["outcome"] == "fail":
        bits = [f"{n} {w}" for n, w in ((fails, "failed"), (errs, "errored"), (s.get("required_crashed", 0), "crashed"),
                                        (s.get("required_uncallable", 0), "uncallable"),
                                        (s.get("required_not_run", 0), "not run"), (skips, "skipped")) if n]
        return "FAIL", f"{P} of {R} required verdicts passed; " + ", ".join(bits)
    if R == 0:
        return "INCOMPLETE", "no required verdict was applicable, so nothing was judged"
    return "INCOMPLETE", f"{P} of {R} required verdicts passed; {skips} skipped (not judged here)"


def _failures(doc: dict) -> list[dict]:
    return [v for v in doc["verdicts"] if v["status"] in BAD_STATUSES and v["status"] != "not-run"]


CLASS_ORDER = ("defect", "dtype-contract", "precision")  # most severe first (rnnconf.properties.classify)
CLASS_TITLE = {"defect": "Defects", "dtype-contract": "Dtype-contract findings", "precision": "Precision findings"}
CLASS_DOC = {
    "defect": "a structural property is violated (causality, state carry, independence, NaN/Inf where the oracle is "
              "finite, nondeterminism, shape, crash, raise or hang), or the error exceeds 2× that of the naive "
              "same-precision baseline",
    "dtype-contract": "an output or state dtype differs from the contract's, or a dtype is accepted and computed "
                      "at a lower precision",
    "precision": "beyond the derived bound, but within 2× the error of the naive same-precision baseline (the "
                 "spec's reference form in plain torch at the same dtype)",
}


def failure_class(v: dict) -> str | None:
    """The verdict's class; a non-passing verdict written before classes existed counts as a defect."""
    if v.get("status") not in BAD_STATUSES:
        return None
    return v.get("failure_class") or "defect"


def failure_groups(doc: dict) -> list[tuple[str, list[dict]]]:
    """``[(class, verdicts)]`` of the failures, most severe class first."""
    fails = _failures(doc)
    return [(c, [v for v in fails if failure_class(v) == c]) for c in CLASS_ORDER
            if any(failure_class(v) == c for v in fails)]


def _class_suffix(v: dict) -> str:
    c = failure_class(v)
    return f" ({c})" if c else ""


def _reproducer(doc: dict, v: dict) -> tuple[str, str] | None:
    """``(path, command)`` of the reproducer the CLI wrote for this verdict (``extra.reproducers``), if any."""
    r = ((doc.get("extra") or {}).get("reproducers") or {}).get(f"{v['prop']}-{v['dtype']}")
    if not isinstance(r, dict) or not r.get("reproducer"):
        return None
    return r["reproducer"], f"python -m pytest -q {r['reproducer']}"


def _budget_line(doc: dict) -> str:
    """How many examples a property could draw, and its time box (``extra.max_examples`` / ``extra.budget_s``)."""
    x = doc.get("extra") or {}
    n, b = x.get("max_examples"), as_float(x.get("budget_s"))
    if n is None:
        return "the profile's count"
    return f"up to {n} per property" + (f", time-boxed at {b:g} s per property (the table says how many ran)"
                                        if b else ", not time-boxed")


def _any_skipped(doc: dict) -> bool:
    return any(v["status"] == "skipped" for v in doc["verdicts"])


def _counterexample_T(ce) -> int | None:
    if not isinstance(ce, dict):
        return None
    for holder in (ce.get("dims"), ce):
        if isinstance(holder, dict):
            t = holder.get("T")
            if isinstance(t, int) and not isinstance(t, bool) and t >= 1:
                return t
    return None


def plot_points(doc: dict) -> list[dict]:
    """Points for the error/bound-versus-T plot: ``doc["measurements"]`` (source ``"measured"``) plus every judged
    verdict whose counterexample names ``T`` (source ``"counterexample"``)."""
    pts = []
    for m in doc.get("measurements") or []:
        r = as_float(m.get("ratio"))
        if r is not None and isinstance(m.get("T"), int):
            pts.append({"prop": m["prop"], "dtype": m["dtype"], "T": m["T"], "ratio": r, "source": "measured"})
    for v in doc["verdicts"]:  # a failing example's own ratio; an errored call measured no error
        T = _counterexample_T(v.get("counterexample"))
        obs, bnd = as_float(v.get("observed")), as_float(v.get("bound"))
        r = _ratio(obs, bnd) if obs is not None and bnd is not None else None
        if T is not None and r is not None:
            pts.append({"prop": v["prop"], "dtype": v["dtype"], "T": T, "ratio": r, "source": "counterexample",
                        "status": v["status"]})
    return pts


# ---- Markdown ----------------------------------------------------------------------------------------------------

def _md_cell(x) -> str:
    return str(x).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def _md_block(text: str, lang: str = "") -> str:
    fence = "~~~~" if "```" in text else "```"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def to_markdown(doc: dict) -> str:
    s, spec, tgt, env = doc["summary"], doc["spec"], doc["target"], doc["environment"]
    b = s["badge"]
    word, line = _outcome_line(doc)
    out = [f"# rnnconf conformance report: `{spec['id']}` — `{tgt['name']}`", ""]
    out += [f"**{b['label']}: {b['message']} ({b['color']}) — {word}:** {line}.", ""]
    if _any_skipped(doc):  # the reminder only where something was skipped
        out += [f"> **{SKIP_NOTE}**", ""]
    c = s["counts"]
    out.append("| passed | failed | errored | skipped | not applicable | required passed / applicable |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    out.append(f"| {c['passed']} | {c['failed']} | {c['errored']} | {c['skipped']} | {c['not-applicable']} "
               f"| {s['required_passed']}/{s['required_total']} |")
    if s.get("internal_errors"):
        out += ["", f"⚠️ {s['internal_errors']} verdict(s) errored inside rnnconf itself (a defect of the suite, "
                    "not of the target); they are still not passes."]
    out += _md_failures(doc)
    out += ["", "## Run", "", "| | |", "|---|---|",
            f"| Spec | `{_md_cell(spec['id'])}` v{_md_cell(spec['version'])} — {_md_cell(spec['title'])} "
            f"({_md_cell(spec['paper'])}) |",
            f"| Signature | `{_md_cell(spec['signature'])}` |",
            f"| Target | `{_md_cell(tgt['name'])}` ({_md_cell(tgt['kind'])}) |",
            f"| Traits | {_md_cell(tgt['traits']) or '—'} |",
            f"| Profile | `{_md_cell(doc['profile'])}` |",
            f"| Examples | {_md_cell(_budget_line(doc))} |",
            f"| Device | {_md_cell(env.get('device_name', '?'))} (`{_md_cell(env.get('device', '?'))}`) |",
            f"| Started / finished | {doc['started']} / {doc['finished']} ({fmt_seconds(doc['duration_s'])}) |",
            f"| rnnconf | {_md_cell(doc['suite']['version'])} (report schema {doc['schema_version']}) |"]

    out += ["", "## Verdicts", "",
            "| Property | dtype | Status | Required | Examples | Worst error/bound | Time |",
            "|---|---|---|:-:|---:|---:|---:|"]
    for v in doc["verdicts"]:
        out.append(f"| `{_md_cell(v['prop'])}` | {_md_cell(v['dtype'])} "
                   f"| {STATUS_ICON.get(v['status'], '')} {STATUS_WORD.get(v['status'], v['status'])}"
                   f"{_class_suffix(v)} | {'yes' if v.get('required', True) else 'no'} | {v.get('examples', 0)} "
                   f"| {fmt_num(verdict_ratio(v))} | {fmt_seconds(v.get('seconds'))} |")
    if not doc["verdicts"]:
        out.append("| *(no verdicts)* | | | | | | |")

    skipped = [v for v in doc["verdicts"] if v["status"] == "skipped"]
    out += ["", "## Skipped (not judged — not passes)", ""]
    out += [f"- `{v['prop']}` · {v['dtype']}: {_md_cell(v.get('reason') or '(no reason recorded)')}"
            for v in skipped] or ["None."]
    na = [v for v in doc["verdicts"] if v["status"] == "not-applicable"]
    if na:
        out += ["", "## Not applicable", ""]
        out += [f"- `{v['prop']}` · {v['dtype']}: {_md_cell(v.get('reason') or '')}" for v in na]

    out += [""] + _plots.markdown_section(doc)  # error against bound, error/bound along t (reports/plots.py)
    pts = plot_points(doc)
    out += ["", "## Error / bound against sequence length", ""]
    if pts:
        out += ["| dtype | T | worst error/bound | property | source |", "|---|---:|---:|---|---|"]
        for p in sorted(pts, key=lambda p: (dtype_key(p["dtype"]), p["T"], p["prop"])):
            out.append(f"| {_md_cell(p['dtype'])} | {p['T']} | {fmt_num(p['ratio'])} | `{_md_cell(p['prop'])}` "
                       f"| {p['source']} |")
    else:
        out.append("No per-length data in this report.")

    out += ["", "## Environment", "", "| | |", "|---|---|"]
    for k, v in _env_rows(env):
        out.append(f"| {_md_cell(k)} | {_md_cell(v)} |")
    if doc.get("extra"):
        out += ["", "## Extra", "", _md_block(json.dumps(doc["extra"], indent=2), "json")]
    return "\n".join(out).rstrip() + "\n"


def _md_failures(doc: dict) -> list[str]:
    """The failures section, first in the report: grouped by class (defect, dtype-contract, precision), each with
    its message, its same-precision baseline and, where a verdict holds several findings, each of them."""
    out = ["", "## Failures and errors", ""]
    groups = failure_groups(doc)
    if not groups:
        out.append("None.")
    for cls, vs in groups:
        out += [f"### {CLASS_TITLE.get(cls, cls)} ({len(vs)})", "", f"*{CLASS_DOC.get(cls, '')}*", ""]
        for v in vs:
            out += [f"#### {STATUS_ICON.get(v['status'], '')} `{v['prop']}` · {v['dtype']} — "
                    f"{STATUS_WORD.get(v['status'], v['status'])}"
                    + (" (rnnconf internal error)" if v.get("internal") else ""), ""]
            out += [_md_block(v.get("reason") or "(no reason recorded)"), ""]
            if v.get("observed") is not None or v.get("bound") is not None:
                out += [f"- observed error **{fmt_num(v.get('observed'))}** vs bound **{fmt_num(v.get('bound'))}** "
                        f"(ratio {fmt_num(verdict_ratio(v))})"]
            if v.get("baseline") is not None:
                out.append(f"- naive same-precision baseline (the spec's reference form in plain torch, "
                           f"{v['dtype']}): error **{fmt_num(v['baseline'])}** at the same element")
            for f in v.get("findings") or []:
                out.append(f"- finding ({f.get('class')}): {_md_cell(f.get('message', ''))}")
            out.append(f"- examples run before it: {v.get('examples', 0)}; time {fmt_seconds(v.get('seconds'))}")
            if (rp := _reproducer(doc, v)) is not None:
                out.append(f"- reproducer: `{rp[0]}` — run `{rp[1]}` in the report directory")
            if v.get("counterexample") is not None:
                out += ["", "Counterexample (shrunk):", "", _md_block(json.dumps(v["counterexample"], indent=2),
                                                                        "json")]
            out.append("")
    return out


def _env_rows(env: dict) -> list[tuple[str, str]]:
    rows, prec = [], env.get("precision") or {}
    for k, v in env.items():
        if k == "precision":
            continue
        rows.append((k, "—" if v is None else str(v)))
    for k, v in prec.items():
        rows.append((f"precision.{k}", "—" if v is None else str(v)))
    return rows


# ---- badge -------------------------------------------------------------------------------------------------------

# Approximate advance widths (px) of Verdana at 11px, the face shields-style badges use.
_W = {" ": 3.9, "!": 4.3, '"': 5.0, "#": 9.0, "$": 7.0, "%": 11.8, "&": 8.0, "'": 3.0, "(": 5.0, ")": 5.0,
      "*": 7.0, "+": 9.0, ",": 4.0, "-": 5.0, ".": 4.0, "/": 5.0, ":": 5.0, ";": 5.0, "<": 9.0, "=": 9.0, ">": 9.0,
      "?": 6.0, "@": 11.0, "[": 5.0, "\\": 5.0, "]": 5.0, "^": 9.0, "_": 7.0, "`": 7.0, "{": 7.0, "|": 5.0,
      "}": 7.0, "~": 9.0, "A": 7.5, "B": 7.6, "C": 7.7, "D": 8.5, "E": 7.0, "F": 6.3, "G": 8.5, "H": 8.3, "I": 4.6,
      "J": 5.0, "K": 7.6, "L": 6.1, "M": 9.3, "N": 8.2, "O": 8.7, "P": 6.6, "Q": 8.7, "R": 7.6, "S": 7.5, "T": 6.8,
      "U": 8.0, "V": 7.5, "W": 10.9, "X": 7.5, "Y": 6.8, "Z": 7.5, "a": 6.6, "b": 6.8, "c": 5.7, "d": 6.8, "e": 6.6,
      "f": 3.9, "g": 6.8, "h": 7.0, "i": 3.0, "j": 3.8, "k": 6.5, "l": 3.0, "m": 10.7, "n": 7.0, "o": 6.7, "p": 6.8,
      "q": 6.8, "r": 4.7, "s": 5.7, "t": 4.3, "u": 7.0, "v": 6.5, "w": 9.0, "x": 6.5, "y": 6.5, "z": 5.7}


def text_width(text: str) -> float:
    """Estimated rendered width of ``text`` in 11px Verdana (digits 7px; unknown characters 7px)."""
    return sum(_W.get(ch, 7.0) for ch in text)


def to_badge_svg(doc: dict) -> str:
    """A standalone shields-style two-part badge, e.g. ``rnnconf hgrn | 23/23``, coloured by the summary's badge."""
    return _badge_svg(doc, standalone=True)


def _badge_svg(doc: dict, standalone: bool) -> str:
    """``standalone=False``: a fragment for inlining into HTML (no XML namespace declaration, distinct ids)."""
    b = doc["summary"]["badge"]
    label, msg = str(b["label"]), str(b["message"])
    fill = BADGE_HEX.get(b["color"], BADGE_HEX["lightgrey"])
    lt, mt = text_width(label), text_width(msg)
    lw, mw = round(lt + 10), round(mt + 10)
    w = lw + mw
    uid = "rnnconf-badge" + ("" if standalone else "-inline")
    xmlns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    e = html.escape
    title = f"{label}: {msg}"
    return (
        f'<svg{xmlns} width="{w}" height="20" viewBox="0 0 {w} 20" role="img" aria-label="{e(title)}">'
        f"<title>{e(title)}</title>"
        f'<linearGradient id="{uid}-s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        f'<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="{uid}-r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#{uid}-r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{fill}"/>'
        f'<rect width="{w}" height="20" fill="url(#{uid}-s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        f'text-rendering="geometricPrecision" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3" textLength="{lt:.1f}" '
        f'lengthAdjust="spacingAndGlyphs">{e(label)}</text>'
        f'<text x="{lw / 2:.1f}" y="14" textLength="{lt:.1f}" lengthAdjust="spacingAndGlyphs">{e(label)}</text>'
        f'<text x="{lw + mw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3" textLength="{mt:.1f}" '
        f'lengthAdjust="spacingAndGlyphs">{e(msg)}</text>'
        f'<text x="{lw + mw / 2:.1f}" y="14" textLength="{mt:.1f}" lengthAdjust="spacingAndGlyphs">{e(msg)}</text>'
        f"</g></svg>" + ("\n" if standalone else "")
    )


# ---- the error/bound-versus-T plot (inline SVG) -----------------------------------------------------------------

def plot_svg(points: list[dict]) -> str | None:
    """Log-log scatter/line plot of worst error/bound against T, one colour per dtype; ``None`` without points."""
    if not points:
        return None
    e = html.escape
    finite = [p["ratio"] for p in points if math.isfinite(p["ratio"])]
    pos = [r for r in finite if r > 0]
    zero_band = 18 if any(r <= 0 for r in finite) else 0  # exact zeros sit in a band below the log axis
    W, H, L, R, TOP, BOT = 760, 360 + zero_band, 70, 170, 34, 50 + zero_band
    pw, ph = W - L - R, H - TOP - BOT
    Ts = [p["T"] for p in points]
    tlo, thi = min(Ts), max(Ts)
    if tlo == thi:
        tlo, thi = max(1, tlo / 2), thi * 2
    xlo, xhi = math.log2(tlo) - 0.15, math.log2(thi) + 0.15

    ys = pos + [1.0]
    ylo, yhi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if yhi - ylo < 1:
        yhi = ylo + 1

    def X(T):
        return L + (math.log2(T) - xlo) / (xhi - xlo) * pw

    def Y(r):
        if not math.isfinite(r):
            return TOP - 14  # the non-finite band above the plot area
        if r <= 0:
            return TOP + ph + 11
        return TOP + (yhi - math.log10(r)) / (yhi - ylo) * ph

    dtypes = sorted(_ordered(p["dtype"] for p in points), key=dtype_key)
    g = [f'<svg class="plot" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
         f'aria-label="worst error over bound against sequence length" font-family="system-ui,sans-serif" '
         f'font-size="11">']
    g.append(f'<rect x="{L}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#c9ccd1"/>')
    y1 = Y(1.0)
    if y1 > TOP:
        g.append(f'<rect x="{L}" y="{TOP}" width="{pw}" height="{y1 - TOP:.1f}" fill="#fdecea"/>')
    step = 1 if yhi - ylo <= 8 else math.ceil((yhi - ylo) / 8)
    for k in range(ylo, yhi + 1, step):
        y = Y(10.0 ** k)
        g.append(f'<line x1="{L}" x2="{L + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eceef1"/>')
        g.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">1e{k}</text>')
    lo2, hi2 = math.ceil(xlo), math.floor(xhi)
    ticks = [2 ** k for k in range(lo2, hi2 + 1)]
    if len(ticks) > 12:
        ticks = ticks[:: math.ceil(len(ticks) / 12)]
    if len(ticks) < 2:
        ticks = sorted(set(ticks) | {min(Ts), max(Ts)})
    for t in ticks:
        x = X(t)
        g.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eceef1"/>')
        g.append(f'<text x="{x:.1f}" y="{TOP + ph + zero_band + 16}" text-anchor="middle" fill="#57606a">{t:g}'
                 f'</text>')
    g.append(f'<line x1="{L}" x2="{L + pw}" y1="{y1:.1f}" y2="{y1:.1f}" stroke="#c62828" stroke-width="1.5" '
             f'stroke-dasharray="6 4"/>')
    g.append(f'<text x="{L + pw - 4}" y="{y1 - 5:.1f}" text-anchor="end" fill="#c62828">bound (ratio 1): above '
             f'fails</text>')
    if any(not math.isfinite(p["ratio"]) for p in points):
        g.append(f'<text x="{L - 6}" y="{TOP - 10}" text-anchor="end" fill="#c62828">∞/NaN</text>')
    if zero_band:
        g.append(f'<text x="{L - 6}" y="{TOP + ph + 15}" text-anchor="end" fill="#57606a">0 (exact)</text>')
    g.append(f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle" fill="#1f2328">sequence length T '
             f'(log scale)</text>')
    g.append(f'<text transform="translate(16 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" fill="#1f2328">'
             f'worst error / bound (log)</text>')

    for d in dtypes:
        col = dtype_color(d, dtypes)
        meas = [p for p in points if p["dtype"] == d and p["source"] == "measured"]
        worst: dict[int, dict] = {}
        for p in meas:
            q = worst.get(p["T"])
            if q is None or not (p["ratio"] <= q["ratio"]):  # NaN and inf win
                worst[p["T"]] = p
        line = sorted(worst.values(), key=lambda p: p["T"])
        if len(line) > 1:
            pts = " ".join(f"{X(p['T']):.1f},{Y(p['ratio']):.1f}" for p in line)
            g.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.6" opacity=".85"/>')
        for p in meas:
            g.append(f'<circle cx="{X(p["T"]):.1f}" cy="{Y(p["ratio"]):.1f}" r="3.2" fill="{col}">'
                     f'<title>{e(p["prop"])} · {e(d)} · T={p["T"]}: error/bound {fmt_num(p["ratio"])}</title>'
                     f"</circle>")
        for p in points:
            if p["dtype"] == d and p["source"] == "counterexample":
                x, y = X(p["T"]), Y(p["ratio"])
                g.append(f'<path d="M{x:.1f} {y - 5.5:.1f}L{x + 5.5:.1f} {y:.1f}L{x:.1f} {y + 5.5:.1f}'
                         f'L{x - 5.5:.1f} {y:.1f}Z" fill="{col}" stroke="#1f2328" stroke-width="1">'
                         f'<title>{e(p["prop"])} · {e(d)} · T={p["T"]}: error/bound {fmt_num(p["ratio"])} '
                         f'({e(p.get("status", ""))} example)</title></path>')
    lx, ly = L + pw + 16, TOP + 6
    g.append(f'<text x="{lx}" y="{ly}" font-weight="600" fill="#1f2328">dtype</text>')
    for i, d in enumerate(dtypes):
        y = ly + 18 * (i + 1)
        g.append(f'<rect x="{lx}" y="{y - 9}" width="12" height="12" rx="2" fill="{dtype_color(d, dtypes)}"/>'
                 f'<text x="{lx + 18}" y="{y + 1}" fill="#1f2328">{e(d)}</text>')
    y = ly + 18 * (len(dtypes) + 2)
    g.append(f'<circle cx="{lx + 6}" cy="{y - 3}" r="3.2" fill="#57606a"/><text x="{lx + 18}" y="{y + 1}" '
             f'fill="#1f2328">measured (worst per T)</text>')
    y += 18
    g.append(f'<path d="M{lx + 6} {y - 8.5}L{lx + 11.5} {y - 3}L{lx + 6} {y + 2.5}L{lx + 0.5} {y - 3}Z" '
             f'fill="#57606a" stroke="#1f2328"/><text x="{lx + 18}" y="{y + 1}" fill="#1f2328">failing example</text>')
    g.append("</svg>")
    return "".join(g)


# ---- HTML --------------------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
background:#fff}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 8px}
h1 code{font-size:.9em}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.sub{color:var(--muted)}
header .badge svg{height:26px;width:auto}
header{display:flex;justify-content:space-between;align-items:flex-start;gap:16px;flex-wrap:wrap}
.banner{margin:18px 0 10px;padding:12px 16px;border-radius:8px;border:1px solid;font-size:15px}
.banner b{font-size:17px;margin-right:8px;letter-spacing:.03em}
.banner.pass{background:#e9f7ec;border-color:#8fd19e;color:#14532d}
.banner.fail{background:#fdecea;border-color:#f1a9a0;color:#7f1d1d}
.banner.incomplete{background:#f3f4f6;border-color:#c4c8cf;color:#374151}
.note{margin:8px 0 14px;padding:8px 12px;border-left:4px solid #d4a72c;background:#fff8e1;color:#4d3b00}
.chips{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0}
.chip{border:1px solid var(--line);border-radius:8px;padding:6px 12px;min-width:96px;background:var(--bg)}
.chip .n{font-size:20px;font-weight:650;display:block}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid var(--line);padding:5px 9px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.st{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.st-passed{background:#dcf5e3;color:#14632f}.st-failed{background:#fbd5d0;color:#8e1b10}
.st-errored{background:#f6d2e8;color:#7a1452}.st-skipped{background:#fdf0c2;color:#6b4e00}
.st-not-applicable{background:#eef0f2;color:#6b7280}
.st-crashed,.st-uncallable{background:#fbd5d0;color:#8e1b10}.st-not-run{background:#eef0f2;color:#8e1b10}
.matrix td.cell{text-align:center;white-space:nowrap}
.matrix td.cell.passed{background:#eaf7ee}.matrix td.cell.failed{background:#fde3df}
.matrix td.cell.errored{background:#fbe1f0}.matrix td.cell.skipped{background:#fff6d6}
.matrix td.cell.not-applicable{background:#f6f7f8;color:#9ca3af}
.matrix td.cell.crashed,.matrix td.cell.uncallable{background:#fde3df}.matrix td.cell.not-run{background:#f6f7f8}
.cls{display:inline-block;font-size:11px;padding:0 5px;border-radius:8px;margin-left:4px;background:#eef0f2}
.cls-defect{background:#d1242f;color:#fff}.cls-dtype-contract{background:#8250df;color:#fff}
.cls-precision{background:#bf8700;color:#fff}
.matrix td.cell .r{display:block;font-size:11.5px;color:var(--muted)}
.card{border:1px solid var(--line);border-left:5px solid #d1242f;border-radius:6px;padding:12px 16px;margin:12px 0}
.card.errored{border-left-color:#a3136b}
.reason{white-space:pre-wrap;word-break:break-word;background:var(--bg);border:1px solid var(--line);border-radius:6px;
padding:8px 10px;margin:6px 0 10px}
.obs{display:flex;gap:22px;flex-wrap:wrap;margin:4px 0 10px}
.obs div span{display:block;color:var(--muted);font-size:12px}
.obs div b{font-size:16px;font-variant-numeric:tabular-nums}
.grid2{display:grid;grid-template-columns:minmax(200px,1fr) 2fr;gap:14px}
details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}
pre.json{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow:auto;
max-height:360px}
.plotbox{overflow-x:auto}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:0}dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0}
footer{margin-top:40px;color:var(--muted);font-size:12px}
.small{font-size:12px;color:var(--muted)}
"""


def _st(status: str) -> str:
    return f'<span class="st st-{html.escape(status)}">{html.escape(STATUS_WORD.get(status, status))}</span>'


def _is_tensor_summary(v) -> bool:
    return isinstance(v, dict) and isinstance(v.get("shape"), list) and set(v) <= {"shape", "min", "max"}


def _flatten_ce(ce, prefix=""):
    scalars, tensors = [], []
    for k, v in ce.items():
        path = f"{prefix}{k}"
        if _is_tensor_summary(v):
            tensors.append((path, v))
        elif isinstance(v, dict):
            s2, t2 = _flatten_ce(v, path + ".")
            scalars += s2
            tensors += t2
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                s2, t2 = _flatten_ce(x, f"{path}[{i}].")
                scalars += s2
                tensors += t2
        else:
            scalars.append((path, v))
    return scalars, tensors


def _ce_html(ce) -> str:
    e = html.escape
    if not isinstance(ce, dict):
        return f'<pre class="json">{e(json.dumps(ce, indent=2))}</pre>'
    parts = []
    dims = ce.get("dims")
    if isinstance(dims, dict) and dims:
        parts.append("<p><b>Sizes:</b> " + " · ".join(f"<code>{e(str(k))} = {e(str(v))}</code>"
                                                     for k, v in dims.items()) + "</p>")
        ce = {k: v for k, v in ce.items() if k != "dims"}
    scalars, tensors = _flatten_ce(ce)
    cols = []
    if scalars:
        rows = "".join(f"<tr><td><code>{e(k)}</code></td><td class='mono'>"
                       f"{e('none' if v is None else json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
                       for k, v in scalars)
        cols.append(f"<div><table><tr><th>Draw</th><th>Value</th></tr>{rows}</table></div>")
    if tensors:
        rows = "".join(f"<tr><td><code>{e(k)}</code></td><td class='mono'>[{e(', '.join(map(str, t['shape'])))}]"
                       f"</td><td class='num'>{fmt_num(t.get('min'))}</td><td class='num'>{fmt_num(t.get('max'))}"
                       f"</td></tr>" for k, t in tensors)
        cols.append(f"<div><table><tr><th>Tensor</th><th>shape</th><th>min</th><th>max</th></tr>{rows}</table>"
                    f"</div>")
    if cols:
        parts.append(f'<div class="grid2">{"".join(cols)}</div>' if len(cols) == 2 else cols[0])
    return "".join(parts)


def to_html(doc: dict) -> str:
    e = html.escape
    s, spec, tgt, env = doc["summary"], doc["spec"], doc["target"], doc["environment"]
    word, line = _outcome_line(doc)
    title = f"rnnconf · {spec['id']} · {tgt['name']}"
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{e(title)} — {e(s['badge']['message'])} {e(word.lower())}</title>",
         f"<style>{_CSS}</style></head><body><main>"]
    h.append(f'<header><div><h1>Conformance report: <code>{e(tgt["name"])}</code></h1>'
             f'<div class="sub">spec <code>{e(spec["id"])}</code> v{e(spec["version"])} — {e(spec["title"])} '
             f'({e(spec["paper"])}) · target kind <b>{e(tgt["kind"])}</b> · profile <code>{e(doc["profile"])}</code>'
             f' · {e(env.get("device_name", "?"))}</div></div>'
             f'<div class="badge">{_badge_svg(doc, standalone=False)}</div></header>')
    h.append(f'<div class="banner {e(s["outcome"])}"><b>{e(word)}</b>{e(line)}.</div>')
    if _any_skipped(doc):  # the reminder only where something was skipped
        h.append(f'<div class="note"><b>Skipped ≠ passed.</b> {e(SKIP_BODY)}</div>')
    c = s["counts"]
    chips = [(st, c[st]) for st in ("passed", "failed", "errored", "skipped", "not-applicable")]
    chips += [(st, c[st]) for st in ("crashed", "uncallable", "not-run") if c.get(st)]
    h.append('<div class="chips">' + "".join(
        f'<div class="chip"><span class="n">{n}</span>{_st(st)}</div>' for st, n in chips)
        + f'<div class="chip"><span class="n">{s["required_passed"]}/{s["required_total"]}</span>'
          f'required passed / applicable</div></div>')
    if s.get("internal_errors"):
        h.append(f'<div class="note">⚠️ {s["internal_errors"]} verdict(s) errored inside rnnconf itself (a defect of '
                 f'the suite, not of the target). They are still not passes.</div>')

    h += _html_failures(doc)  # failures first, grouped by class

    # -- verdict matrix: property × dtype
    vs = doc["verdicts"]
    h.append("<h2>Verdicts</h2>")
    if not vs:
        h.append("<p>No verdicts.</p>")
    else:
        dtypes = sorted(_ordered(v["dtype"] for v in vs), key=dtype_key)
        props = _ordered(v["prop"] for v in vs)
        cell = {}
        for v in vs:
            cell.setdefault((v["prop"], v["dtype"]), v)
        h.append('<table class="matrix"><tr><th>Property</th>' + "".join(f"<th>{e(d)}</th>" for d in dtypes)
                 + "</tr>")
        for p in props:
            req = next(v.get("required", True) for v in vs if v["prop"] == p)
            row = f"<tr><td><code>{e(p)}</code>{'' if req else ' <span class=small>(advisory)</span>'}</td>"
            for d in dtypes:
                v = cell.get((p, d))
                if v is None:
                    row += '<td class="cell"><span class="small">—</span></td>'
                    continue
                r = verdict_ratio(v)
                tip = e(v.get("reason") or STATUS_WORD.get(v["status"], v["status"]), quote=True)
                rt = f'<span class="r">err/bound {fmt_num(r)}</span>' if r is not None else ""
                row += f'<td class="cell {e(v["status"])}" title="{tip}">{_st(v["status"])}{_cls_html(v)}{rt}</td>'
            h.append(row + "</tr>")
        h.append("</table>")
        h.append('<p class="small">Cells: status and the worst observed error / derived bound over all examples '
                 '(≤ 1 is within the spec\'s error model). Hover a cell for its reason.</p>')

    h.append(_plots.html_section(doc))  # error against bound, error/bound along t (reports/plots.py)

    # -- plot
    h.append("<h2>Error / bound against sequence length</h2>")
    pts = plot_points(doc)
    svg = plot_svg(pts)
    if svg is None:
        h.append("<p>No per-length data in this report (no <code>measurements</code>, and no judged "
                 "counterexample that names <code>T</code>).</p>")
    else:
        h.append(f'<div class="plotbox">{svg}</div><p class="small">{len(pts)} point(s). Circles: '
                 f'<code>measurements</code> (lines join the worst ratio per T); diamonds: failing examples. The '
                 f'shaded region lies above the bound.</p>')

    # -- full table
    h.append("<h2>All verdicts</h2><table><tr><th>Property</th><th>dtype</th><th>Status</th><th>Required</th>"
             "<th>Examples</th><th>Worst error/bound</th><th>Time</th><th>Reason</th></tr>")
    for v in vs:
        h.append(f"<tr><td><code>{e(v['prop'])}</code></td><td>{e(v['dtype'])}</td><td>{_st(v['status'])}{_cls_html(v)}</td>"
                 f"<td>{'yes' if v.get('required', True) else 'no'}</td><td class='num'>{v.get('examples', 0)}</td>"
                 f"<td class='num'>{fmt_num(verdict_ratio(v))}</td><td class='num'>{fmt_seconds(v.get('seconds'))}"
                 f"</td><td class='small'>{e(_short(v.get('reason') or ''))}</td></tr>")
    h.append("</table>")

    # -- run, spec, environment
    h.append("<h2>Run and environment</h2><dl class='kv'>")
    run_rows = [("spec", f"{spec['id']} v{spec['version']} — {spec['title']} ({spec['paper']})"),
                ("signature", spec["signature"]), ("target", f"{tgt['name']} ({tgt['kind']})"),
                ("traits", tgt["traits"] or "—"), ("profile", doc["profile"]), ("examples", _budget_line(doc)),
                ("started", doc["started"]), ("finished", doc["finished"]),
                ("duration", fmt_seconds(doc["duration_s"])),
                ("rnnconf", f"{doc['suite']['version']} (report schema {doc['schema_version']})")]
    for k, x in run_rows + _env_rows(env):
        mono = " class='mono'" if k in ("signature", "platform") else ""
        h.append(f"<dt>{e(k)}</dt><dd{mono}>{e(str(x))}</dd>")
    h.append("</dl>")
    if doc.get("extra"):
        h.append(f'<details><summary>extra</summary><pre class="json">{e(json.dumps(doc["extra"], indent=2))}'
                 f"</pre></details>")
    h.append(f"<footer>Generated by rnnconf {e(doc['suite']['version'])}. The JSON report next to this page is the "
             f"record; this page is rendered from it.</footer></main></body></html>")
    return "\n".join(h) + "\n"


def _cls_html(v: dict) -> str:
    c = failure_class(v)
    return f' <span class="cls cls-{html.escape(c)}">{html.escape(c)}</span>' if c else ""


def _html_failures(doc: dict) -> list[str]:
    """The failures, grouped by class (most severe first), each card with its message, baseline and findings."""
    e = html.escape
    fails = _failures(doc)
    h = [f"<h2>Failures and errors ({len(fails)})</h2>"]
    if not fails:
        h.append("<p>None.</p>")
    for cls, group in failure_groups(doc):
        h.append(f'<h3 class="clsgroup">{e(CLASS_TITLE.get(cls, cls))} ({len(group)})</h3>'
                 f'<p class="small">{e(CLASS_DOC.get(cls, ""))}</p>')
        for v in group:
            h.append(f'<div class="card {e(v["status"])}"><h3><code>{e(v["prop"])}</code> · {e(v["dtype"])} '
                     f'{_st(v["status"])}{_cls_html(v)}' + (" <span class=small>rnnconf internal error</span>"
                                                             if v.get("internal") else "") + "</h3>")
            h.append(f'<div class="reason mono">{e(v.get("reason") or "(no reason recorded)")}</div>')
            obs = [("observed error", fmt_num(v.get("observed"))), ("bound", fmt_num(v.get("bound"))),
                   ("error / bound", fmt_num(verdict_ratio(v)))]
            if v.get("baseline") is not None:
                obs.append((f"plain torch {v['dtype']} (baseline)", fmt_num(v["baseline"])))
            if v.get("observed") is None and v.get("bound") is None:
                obs = []
            obs += [("examples before it", str(v.get("examples", 0))), ("time", fmt_seconds(v.get("seconds")))]
            h.append('<div class="obs">' + "".join(f"<div><span>{e(k)}</span><b>{e(x)}</b></div>" for k, x in obs)
                     + "</div>")
            if v.get("findings"):
                h.append("<ul>" + "".join(f'<li><span class="cls cls-{e(str(f.get("class")))}">'
                                          f'{e(str(f.get("class")))}</span> <span class="mono small">'
                                          f'{e(str(f.get("message", "")))}</span></li>' for f in v["findings"])
                         + "</ul>")
            if (rp := _reproducer(doc, v)) is not None:
                h.append(f'<p>Reproducer: <code>{e(rp[0])}</code> — run <code>{e(rp[1])}</code> in the report '
                         f'directory.</p>')
            ce = v.get("counterexample")
            if ce is not None:
                h.append("<h3>Counterexample (shrunk)</h3>" + _ce_html(ce))
                h.append(f'<details><summary>raw counterexample JSON</summary><pre class="json">'
                         f'{e(json.dumps(ce, indent=2))}</pre></details>')
            h.append("</div>")
    return h


def _short(text: str, n: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
