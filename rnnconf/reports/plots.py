"""Report plots, drawn by matplotlib (the optional extra ``plots``: ``pip install 'rnnconf[plots]'``).

Two kinds, both from the report document alone:

* **error against bound**, one per numeric property: every measured example is a point (b, e) — the derived bound b
  and the observed |error| e at the example's worst element (err/bound) — on log–log axes with the line e = b.  A
  point above the line is outside the spec's error model; the failing example (the verdict's ``observed`` and
  ``bound``) is drawn as a cross.  Exact results (e = 0) are counted in the caption, not drawn.  Data:
  ``doc["measurements"]`` records with ``err`` and ``bound`` (written by :func:`rnnconf.isolate.run_item`).
* **error/bound along t**, one per failing verdict whose failing output is a sequence: max over the other axes of
  |error|/bound at each step t (``verdict["profile_t"]``), against the line 1.  It shows where along the sequence
  the error grows past the bound (e.g. a chunk boundary, or accumulation with t).

:func:`figures` returns :class:`Plot` records (a file name, a title, SVG text, a caption); the renderers embed them
in report.html (as ``data:`` URIs, so the page stays self-contained) and link them from report.md (files beside it,
written by :mod:`rnnconf.reports.io`).  Without matplotlib, :func:`unavailable` says why and the reports say that
plots are off.  SVGs are deterministic (fixed hash salt, no date), so regenerated reports diff cleanly.
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from .model import as_float

FILE_PREFIX = "plot-"
COLORS = {"float64": "#4c72b0", "float32": "#dd8452", "float16": "#55a868", "bfloat16": "#8172b3"}
OTHER = "#937860"
OFF = "Plots are off: matplotlib is not installed (install the extra: pip install 'rnnconf[plots]')."


@dataclass(frozen=True)
class Plot:
    name: str  # file name beside report.md, e.g. "plot-oracle-errbound.svg"
    title: str
    svg: str
    caption: str

    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode()).decode()


def unavailable() -> str | None:
    """Why plots cannot be drawn here (matplotlib missing), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return OFF
    return None


def figures(doc: dict) -> list[Plot]:
    """Every plot of ``doc`` (empty without matplotlib or without data)."""
    if unavailable():
        return []
    meas = [m for m in doc.get("measurements") or [] if isinstance(m, dict)]
    fails = [v for v in doc.get("verdicts") or [] if v.get("status") == "failed"]
    key = json.dumps({"m": [[m.get("prop"), m.get("dtype"), m.get("err"), m.get("bound")] for m in meas],
                      "f": [[v.get("prop"), v.get("dtype"), v.get("observed"), v.get("bound"), v.get("profile_t")]
                            for v in fails]}, sort_keys=True, default=str)
    return list(_figures(key))  # both renderers ask: drawn once


@lru_cache(maxsize=8)
def _figures(key: str) -> tuple[Plot, ...]:
    data = json.loads(key)
    meas, fails = data["m"], data["f"]
    out = []
    for prop in _ordered([m[0] for m in meas if _num(m[3])] + [f[0] for f in fails if _num(f[3])]):
        pts = [(m[1], as_float(m[2]), as_float(m[3])) for m in meas if m[0] == prop and _num(m[2]) and _num(m[3])]
        bad = [(f[1], as_float(f[2]), as_float(f[3])) for f in fails if f[0] == prop and _num(f[2]) and _num(f[3])]
        if bad or any(e > 0 and b > 0 for _, e, b in pts):  # every example exact: nothing to draw (see exact_only)
            _add(out, _errbound, prop, pts, bad)
    for prop, dtype, _obs, _bnd, prof in fails:
        vals = [as_float(x) for x in prof or []]
        if len(vals) >= 2 and all(x is not None and math.isfinite(x) for x in vals):
            _add(out, _along_t, prop, dtype, vals)
    return tuple(out)


def _add(out: list, draw, *args) -> None:
    """A plot that cannot be drawn from its data is left out; the report (its verdicts) is never lost to a plot."""
    try:
        out.append(draw(*args))
    except Exception:  # noqa: BLE001
        pass


def exact_only(doc: dict) -> dict[str, int]:
    """Numeric properties whose every measured example was exact (error 0): property -> examples."""
    meas = [m for m in doc.get("measurements") or [] if isinstance(m, dict) and _num(m.get("bound"))]
    failed = {v.get("prop") for v in doc.get("verdicts") or [] if v.get("status") == "failed"}
    out: dict[str, int] = {}
    for p in _ordered([m.get("prop") for m in meas]):
        errs = [as_float(m.get("err")) for m in meas if m.get("prop") == p]
        if p not in failed and errs and all(e == 0 for e in errs):
            out[p] = len(errs)
    return out


def _num(x) -> bool:
    f = as_float(x)
    return f is not None and math.isfinite(f) and f >= 0


def _ordered(xs):
    seen = []
    for x in xs:
        if x not in seen:
            seen.append(x)
    return seen


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "x"


def _new_fig(w=5.6, h=3.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "rnnconf", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "rnnconf (matplotlib)"})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):] if "<svg" in svg else svg  # no XML prolog: embeddable as is


def _errbound(prop: str, pts, bad) -> Plot:
    fig, ax = _new_fig()
    drawn = [(d, e, b) for d, e, b in pts if e > 0 and b > 0]  # an exact result (e = 0) has no place on a log axis
    n_exact = sum(e == 0 for _, e, _ in pts)
    pos = [x for _, e, b in drawn + bad for x in (e, b) if x > 0]
    lo, hi = (min(pos), max(pos)) if pos else (1e-8, 1.0)
    lo, hi = 10 ** math.floor(math.log10(lo) - 0.3), 10 ** math.ceil(math.log10(hi) + 0.3)
    ax.fill_between([lo, hi], [lo, hi], [hi, hi], color="#e05d44", alpha=0.07, lw=0)
    ax.plot([lo, hi], [lo, hi], color="#444", lw=1, ls="--", label="error = bound")
    for d in _ordered([p[0] for p in drawn]):
        xy = [(b, e) for dd, e, b in drawn if dd == d]
        ax.scatter([b for b, _ in xy], [e for _, e in xy], s=16, alpha=0.75, color=COLORS.get(d, OTHER),
                   label=f"{d} ({len(xy)})")
    above = sum(e > b for _, e, b in drawn)
    for d, e, b in bad:
        ax.scatter([max(b, lo)], [max(e, lo)], s=70, marker="X", color="#c62828", edgecolor="white",
                   linewidth=0.6, zorder=5, label=f"failing example ({d})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("derived bound at the worst element")
    ax.set_ylabel("observed |error|")
    ax.set_title(f"{prop}: error against bound", fontsize=10)
    ax.grid(True, which="major", alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    n = len(pts)
    cap = (f"{n} measured example(s), one point each (its worst element); {above} above the line"
           + (f"; {n_exact} exact (error 0: not drawn on log axes)" if n_exact else "")
           + (f"; {len(bad)} failing example(s) (×)" if bad else "") + ". Shaded: outside the error model.")
    return Plot(f"{FILE_PREFIX}{_slug(prop)}-errbound.svg", f"{prop}: error against bound", _svg(fig), cap)


def _along_t(prop: str, dtype: str, vals: list[float]) -> Plot:
    fig, ax = _new_fig(5.6, 3.0)
    t = list(range(len(vals)))
    pos = [v for v in vals if v > 0]
    log = bool(pos) and max(pos) / min(pos) > 100
    floor = min(pos) / 10 if pos else 1e-3
    ys = [v if v > 0 or not log else floor for v in vals]
    ax.step(t, ys, where="mid", color=COLORS.get(dtype, OTHER), lw=1.2)
    ax.scatter([i for i, v in enumerate(vals) if v > 1], [v for v in vals if v > 1], s=14, color="#c62828", zorder=4,
               label="beyond the bound")
    ax.axhline(1.0, color="#444", lw=1, ls="--", label="error = bound")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("t (time step)")
    ax.set_ylabel("max |error| / bound")
    ax.set_title(f"{prop} · {dtype}: error/bound along t (failing example)", fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    worst = max(range(len(vals)), key=lambda i: vals[i])
    out = sum(v > 1 for v in vals)
    cap = (f"T = {len(vals)}; {out} step(s) beyond the bound; worst at t = {worst} "
           f"({vals[worst]:.3g}× the bound).")
    return Plot(f"{FILE_PREFIX}{_slug(prop)}-{_slug(dtype)}-along-t.svg", f"{prop} · {dtype}: error/bound along t",
                _svg(fig), cap)


# ---- the renderers' side -------------------------------------------------------------------------------------------

def html_section(doc: dict) -> str:
    """The report.html section: every plot as an ``<img>`` with a ``data:`` URI, or a note that plots are off."""
    import html

    e = html.escape
    h = ["<h2>Error against bound</h2>"]
    why = unavailable()
    if why:
        return h[0] + f'<p class="note">{e(why)}</p>'
    plots = figures(doc)
    if not plots and exact_only(doc):
        return h[0] + f'<p>{e(_exact_line(exact_only(doc)))}</p>'
    if not plots:
        return h[0] + ("<p>No measured errors with bounds in this report (no <code>measurements</code> with "
                       "<code>err</code>/<code>bound</code>, and no failing example with a bound).</p>")
    for p in plots:
        h.append(f'<figure class="plotbox"><img alt="{e(p.title, quote=True)}" src="{p.data_uri()}">'
                 f'<figcaption class="small">{e(p.caption)}</figcaption></figure>')
    if exact := exact_only(doc):
        h.append(f'<p class="small">{e(_exact_line(exact))}</p>')
    return "\n".join(h)


def _exact_line(exact: dict[str, int]) -> str:
    return "Exact in every measured example (error 0, nothing to draw on log axes): " + \
        ", ".join(f"{p} ({n})" for p, n in exact.items()) + "."


def markdown_section(doc: dict) -> list[str]:
    """The report.md lines: links to the plot files beside it, or a note that plots are off."""
    why = unavailable()
    lines = ["## Error against bound", ""]
    if why:
        return lines + [f"_{why}_", ""]
    plots = figures(doc)
    if not plots:
        return lines + [_exact_line(exact_only(doc)) if exact_only(doc) else
                        "No measured errors with bounds in this report.", ""]
    for p in plots:
        lines += [f"![{p.title}]({p.name})", "", p.caption, ""]
    if exact := exact_only(doc):
        lines += [_exact_line(exact), ""]
    return lines


def files(doc: dict) -> dict[str, str]:
    """File name -> SVG text, for the files written beside report.md."""
    return {p.name: p.svg for p in figures(doc)}
