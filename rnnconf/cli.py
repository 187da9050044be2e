"""``rnnconf`` — conformance runs for any kernel, from the command line.

    rnnconf list
    rnnconf check --spec ID --impl TARGET [--device cpu|cuda] [--profile ci|dev|gpu|fuzz] [--examples N]
                  [--report DIR] [--isolate] [--timeout SECONDS] [--property NAME ...]
    rnnconf check --builtin [--spec ID] [--report DIR] [...]
    rnnconf fuzz  --spec ID --impl TARGET --time 10m [--report DIR] [--device cpu|cuda] [--timeout SECONDS]
    rnnconf report DIR

TARGET is ``package.module:function``, ``path/to/file.py:function``, a known adapter name (``rnnconf list``) or a
built-in form of the spec (``sequential`` or ``hgrn/sequential``); see :mod:`rnnconf.targets_resolve`.

Exit status: 0 — every required property passed (not-applicable ones aside); 1 — at least one required property
failed or errored (errored includes a target that raised, hung past ``--timeout``, or crashed an ``--isolate`` worker,
and any rnnconf-internal error: none of these is ever a pass); 2 — usage error (unknown spec, unimportable target,
missing function, bad option), reported in one line on stderr.

A *skipped* verdict (something that could not be judged here, e.g. bfloat16 under the Triton interpreter) never
counts as passed: it shows in the table and keeps the badge grey ("incomplete"), but it does not by itself make the
exit status 1 — a CPU-only CI machine cannot judge what it cannot run, and failing it for that would make the exit
status useless there.  The badge and the report's summary are where "complete" is decided.

Reports: ``check --impl`` writes one report directory (``--report DIR``, default ``reports/<spec>/<target>``);
``check --builtin`` writes ``DIR/<spec>/<target>/`` for each built-in form and kernel (DIR defaults to ``reports``)
plus ``DIR/index.md`` and ``DIR/index.html``.  Each failed or errored verdict also leaves
``counterexamples/<prop>-<dtype>.pt`` and a pytest reproducer ``repro_<prop>_<dtype>.py`` in its report directory.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from .targets_resolve import UsageError  # one-line problems with the command: exit status 2

PROFILE_NAMES = ("ci", "dev", "gpu", "fuzz")
STATUS_SHORT = {"passed": "passed", "failed": "FAILED", "errored": "ERRORED", "skipped": "skipped",
                "not-applicable": "n/a"}
DTYPES = ("float64", "float32", "float16", "bfloat16")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump: the CLI's exit status 2 contract
        raise UsageError(message.replace("\n", " "))


# ---- argument parsing ---------------------------------------------------------------------------------------------
def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {s!r}")
    return v


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|min|s|sec)?", re.I)


def parse_duration(s: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h30m"``, ``"2.5m"``, ``"45"`` (seconds) -> seconds."""
    text = s.strip()
    pos, total = 0, 0.0
    unit = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0, None: 1.0}
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m:
            raise argparse.ArgumentTypeError(f"expected a duration like 10m, 90s or 1h30m, got {s!r}")
        total += float(m.group(1)) * unit[m.group(2).lower() if m.group(2) else None]
        pos = m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not text or total <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration like 10m, 90s or 1h30m, got {s!r}")
    return total


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rnnconf", description="Property-based conformance of recurrent sequence-model kernels against "
                                            "high-precision oracles.",
                epilog="Exit status: 0 all required properties passed, 1 a property failed or errored, 2 usage "
                       "error.  Skipped (not judged) never counts as passed; it shows in the report and badge.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{list,check,fuzz,report}")

    sub.add_parser("list", help="specs and known adapters (with availability), built-in forms")

    c = sub.add_parser("check", help="run every property against one target (or every built-in one)")
    c.add_argument("--spec", help="spec id (rnnconf list)")
    c.add_argument("--impl", metavar="TARGET", help="package.module:function, path/to/file.py:function, an adapter "
                                                     "name, or a built-in form of the spec")
    c.add_argument("--builtin", action="store_true", help="check every built-in form and kernel (of --spec, if given)")
    _common(c)
    c.add_argument("--profile", choices=PROFILE_NAMES, default="ci", help="Hypothesis profile (default: ci)")
    c.add_argument("--examples", type=_positive_int, metavar="N", help="examples per property (default: profile's)")
    c.add_argument("--report", metavar="DIR", help="report directory (default reports/<spec>/<target>; with "
                                                  "--builtin the root, default reports)")
    c.add_argument("--isolate", action="store_true", help="run each property in a worker subprocess: a crash or a "
                                                         "hang in C code becomes an errored verdict")
    c.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="only this property (repeatable)")

    f = sub.add_parser("fuzz", help="random search until a failure or the time is up")
    f.add_argument("--spec", required=True, help="spec id")
    f.add_argument("--impl", required=True, metavar="TARGET", help="as for check")
    f.add_argument("--time", required=True, type=parse_duration, metavar="DURATION", help="e.g. 10m, 90s, 1h")
    f.add_argument("--report", metavar="DIR", help="report directory (default reports/fuzz/<spec>/<target>)")
    _common(f)
    f.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="only this property (repeatable)")

    r = sub.add_parser("report", help="re-render Markdown/HTML/badge from saved JSON report(s)")
    r.add_argument("dir", metavar="DIR", help="a report directory, its report.json, or a root of report directories")
    return p


def _common(sp):
    sp.add_argument("--device", choices=("cpu", "cuda"), help="where inputs live (default: the profile's, cpu)")
    sp.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                    help="per-call timeout (default RNNCONF_CALL_TIMEOUT or 300)")


# ---- environment ---------------------------------------------------------------------------------------------------
def _setup_device(args, profile_name: str) -> str:
    """Decide the device and set TRITON_INTERPRET before anything imports triton."""
    device = getattr(args, "device", None) or ("cuda" if profile_name == "gpu" else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    else:
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda (or --profile gpu) but no CUDA device is available")
    return device


def _timeout(args) -> float:
    from .isolate import set_call_timeout
    from .properties import calling

    t = args.timeout if getattr(args, "timeout", None) else calling.CALL_TIMEOUT_S
    set_call_timeout(t)
    return t


# ---- output --------------------------------------------------------------------------------------------------------
class Out:
    def __init__(self, stream=None):
        self.s = stream or sys.stdout
        self.tty = hasattr(self.s, "isatty") and self.s.isatty()
        self._live = False

    def line(self, text: str = ""):
        if self._live:
            self.s.write("\r\033[K")
            self._live = False
        self.s.write(text + "\n")
        self.s.flush()

    def live(self, text: str):
        if self.tty:
            self.s.write("\r\033[K" + text)
            self.s.flush()
            self._live = True


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt_verdict(v) -> str:
    s = f"{STATUS_SHORT[v.status]:<8}"
    if v.status in ("passed", "failed", "errored"):
        s += f" {v.examples:>4} examples {v.seconds:7.1f} s"
        if v.status == "passed" and v.worst_ratio:
            s += f"  worst {v.worst_ratio:.3g}× bound"
        elif v.status == "failed" and v.observed is not None and v.bound:
            s += f"  {v.observed / v.bound:.3g}× bound"
    elif v.reason:
        s += f" {_short(v.reason, 90)}"
    return s


# ---- one target -----------------------------------------------------------------------------------------------------
def run_target(spec, resolved, *, items, profile, device, examples, isolate, timeout, out: Out, variants=()):
    """Run every item; returns (verdicts [(Item, Verdict)], measurements, started, finished)."""
    from .isolate import Worker, run_item

    target = resolved.target
    vmap = {lab: t for lab, t in variants if lab}
    started = time.time()
    results, meas = [], []
    worker = Worker(spec.id, resolved.canonical, device, profile.name, timeout, examples,
                    name=target.name) if isolate else None
    width = max((len(it.display) for it in items), default=10)
    try:
        for i, it in enumerate(items, 1):
            head = f"  [{i:>{len(str(len(items)))}}/{len(items)}] {it.display:<{width}} {it.dtype:<9}"

            def progress(n, head=head):
                out.live(f"{head} … {n} examples")

            out.live(f"{head} …")
            if worker is not None:
                o = worker.run(it, on_example=progress)
            else:
                o = run_item(it, spec, target, profile, max_examples=examples, variants=vmap, on_example=progress)
            v = o.verdict
            results.append((it, v))
            meas += o.measurements
            out.line(f"{head} {_fmt_verdict(v)}")
            if v.status in ("failed", "errored"):
                out.line(f"      {_short(v.reason, 300)}")
    finally:
        if worker is not None:
            worker.close()
    return results, meas, started, time.time()


def _verdict_table(results, out: Out):
    rows: dict[str, dict] = {}
    for it, v in results:
        rows.setdefault(it.display, {})[it.dtype] = v.status
    dts = [d for d in DTYPES if any(d in r for r in rows.values())]
    w = max([len(k) for k in rows] + [8])
    out.line()
    out.line((f"  {'property':<{w}}  " + "  ".join(f"{d:<9}" for d in dts)).rstrip())
    out.line(f"  {'-' * w}  " + "  ".join("-" * 9 for _ in dts))
    for name, r in rows.items():
        out.line((f"  {name:<{w}}  " + "  ".join(f"{STATUS_SHORT.get(r.get(d, ''), ''):<9}" for d in dts)).rstrip())


def _summary_line(doc) -> str:
    s = doc["summary"]
    c = s["counts"]
    return (f"{c['passed']} passed, {c['failed']} failed, {c['errored']} errored, {c['skipped']} skipped, "
            f"{c['not-applicable']} not applicable — required {s['required_passed']}/{s['required_total']} passed "
            f"[{s['outcome']}]")


def finish_target(spec, resolved, results, meas, started, finished, *, report_dir, profile, device, timeout,
                  isolate, command, out: Out, target_arg: str, extra=None):
    """Write reproducers and the report for one target; print the table.  Returns (doc, exit_code)."""
    from .reports import build_report, write_report
    from .reproducer import write_reproducer

    target = resolved.target
    report_dir = Path(report_dir)
    repros = {}
    for it, v in results:
        if v.status in ("failed", "errored"):
            try:
                got = write_reproducer(v, report_dir, item=it, target=resolved.canonical, name=target.name,
                                       device=device,
                                       profile=profile.name, timeout=timeout, command=command)
            except Exception as e:  # noqa: BLE001  (an example torch cannot save: say so, keep the report)
                out.line(f"  (could not save the counterexample of {it.key}: {type(e).__name__}: {e})")
                got = None
            if got:
                repros[it.key] = {"reproducer": got[0].name, "counterexample": f"counterexamples/{got[1].name}"}
    traits = target.traits.describe()
    if resolved.origin in ("module", "file"):
        traits += " (ANY_TRAITS: the most permissive derived error model — the target declares no traits)"
    ex = {"target_string": target_arg, "resolved_as": resolved.origin, "rebuild_with": resolved.canonical,
          "notes": list(resolved.notes), "doc": target.doc, "supports": sorted(target.supports),
          "dtypes": [str(d).replace("torch.", "") for d in target.dtypes], "command": command,
          "isolate": bool(isolate), "call_timeout_s": timeout, "reproducers": repros, "measurements": meas}
    ex.update(extra or {})
    verdicts = [v for _, v in results]
    code = 1 if any(v.required and v.status in ("failed", "errored") for v in verdicts) else 0
    try:
        doc = build_report(verdicts, spec=spec, target_name=target.name, target_kind=target.kind, traits=traits,
                           profile=profile.name, device=device, started=started, finished=finished, extra=ex)
        paths = write_report(doc, report_dir)
    except Exception as e:  # noqa: BLE001  (an rnnconf defect: say so, keep the verdicts, never pass)
        _verdict_table(results, out)
        out.line(f"  rnnconf internal error: could not write the report to {report_dir}: {type(e).__name__}: "
                 f"{_short(e, 300)}")
        return None, 1
    _verdict_table(results, out)
    out.line()
    out.line(f"  {target.id}: {_summary_line(doc)}")
    for it, v in results:
        if v.status in ("failed", "errored"):
            out.line(f"  {STATUS_SHORT[v.status]} {it.display} ({it.dtype}): {_short(v.reason, 400)}")
            if it.key in repros:
                out.line(f"    reproducer: {report_dir / repros[it.key]['reproducer']}")
    out.line(f"  report: {paths['html']}")
    return doc, code


# ---- commands -------------------------------------------------------------------------------------------------------
def cmd_list(args, out: Out) -> int:
    if not _cuda_quick():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from .registry import all_specs, builtin_forms

    out.line("Specs:")
    for s in all_specs():
        out.line(f"  {s.id:<12} {s.paper:<20} {s.title}")
        out.line(f"  {'':<12} {s.signature}")
    out.line()
    out.line("Built-in forms and kernels (--impl NAME, or check --builtin):")
    for t in builtin_forms():
        out.line(f"  {t.id:<24} {t.kind:<7} {_short(t.doc, 80)}")
    out.line()
    out.line("Adapters (--impl NAME):")
    try:
        from .adapters import list_adapters

        ads = list_adapters()
    except ImportError:
        ads = []
    if not ads:
        out.line("  (none)")
    for a in ads:
        avail = "available" if a["available"] else f"unavailable: {a['reason']}"
        out.line(f"  {a['name']:<28} {a['spec']:<10} {avail}")
        out.line(f"  {'':<28} {_short(a['doc'], 100)}")
    return 0


def _cuda_quick() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def _profile(name: str, device: str):
    import dataclasses

    from .properties import get_profile

    p = get_profile(name)
    return p if p.device == device else dataclasses.replace(p, device=device)


def _check_properties(names):
    if not names:
        return None
    from .properties import invariants  # noqa: F401  (registers the spec-specific properties)
    from .properties.checks import PROPERTIES

    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise UsageError(f"unknown property {unknown[0]!r}; known: {', '.join(PROPERTIES)}")
    return list(names)


def _command_line(argv) -> str:
    import shlex

    return "rnnconf " + " ".join(shlex.quote(a) for a in argv)


def cmd_check(args, out: Out, argv) -> int:
    if args.builtin:
        if args.impl:
            raise UsageError("--builtin and --impl are mutually exclusive")
        return cmd_check_builtin(args, out, argv)
    if not args.spec or not args.impl:
        raise UsageError("check needs --spec ID and --impl TARGET (or --builtin)")
    device = _setup_device(args, args.profile)
    timeout = _timeout(args)
    from .isolate import plan
    from .reproducer import safe_name
    from .targets_resolve import autotune_variants, get_spec_or_usage, resolve

    spec = get_spec_or_usage(args.spec)
    resolved = resolve(spec.id, args.impl, device)
    only = _check_properties(args.properties)
    variants = []
    if resolved.origin == "adapter":
        try:
            variants = autotune_variants(args.impl)
        except Exception as e:  # noqa: BLE001
            out.line(f"  (autotune variants unavailable: {type(e).__name__}: {e})")
    profile = _profile(args.profile, device)
    items = plan(spec, resolved.target, variants, only=only, examples=args.examples)
    report_dir = Path(args.report) if args.report else Path("reports") / spec.id / safe_name(resolved.target.name)
    out.line(f"rnnconf check: {resolved.target.id} ({resolved.target.kind}; {resolved.origin}) — {len(items)} "
             f"items, profile {profile.name}, device {device}"
             + (", isolated" if args.isolate else "") + f", per-call timeout {timeout:g} s")
    for n in resolved.notes:
        out.line(f"  note: {n}")
    results, meas, started, finished = run_target(spec, resolved, items=items, profile=profile, device=device,
                                                  examples=args.examples, isolate=args.isolate, timeout=timeout,
                                                  out=out, variants=variants)
    _, code = finish_target(spec, resolved, results, meas, started, finished, report_dir=report_dir,
                            profile=profile, device=device, timeout=timeout, isolate=args.isolate,
                            command=_command_line(argv), out=out, target_arg=args.impl)
    if not args.report:  # the default layout reports/<spec>/<target>: keep reports/index.* current
        write_index(Path("reports"))
    return code


def cmd_check_builtin(args, out: Out, argv) -> int:
    device = _setup_device(args, args.profile)
    timeout = _timeout(args)
    from .isolate import plan
    from .registry import builtin_forms
    from .reproducer import safe_name
    from .targets_resolve import Resolved, get_spec_or_usage

    if args.spec:
        get_spec_or_usage(args.spec)
    only = _check_properties(args.properties)
    profile = _profile(args.profile, device)
    root = Path(args.report or "reports")
    targets = builtin_forms(args.spec)
    if not targets:
        raise UsageError(f"no built-in forms for spec {args.spec!r}")
    t_all = time.perf_counter()
    code, rows = 0, []
    for t in targets:
        spec = get_spec_or_usage(t.spec_id)
        resolved = Resolved(t, "builtin", t.id)
        items = plan(spec, t, (), only=only, examples=args.examples)
        out.line(f"rnnconf check: {t.id} ({t.kind}) — {len(items)} items, profile {profile.name}, device {device}"
                 + (", isolated" if args.isolate else ""))
        results, meas, started, finished = run_target(spec, resolved, items=items, profile=profile, device=device,
                                                      examples=args.examples, isolate=args.isolate, timeout=timeout,
                                                      out=out)
        doc, c = finish_target(spec, resolved, results, meas, started, finished,
                               report_dir=root / spec.id / safe_name(t.name), profile=profile, device=device,
                               timeout=timeout, isolate=args.isolate, command=_command_line(argv), out=out,
                               target_arg=t.id)
        code = max(code, c)
        if doc is not None:
            rows.append(doc)
        out.line()
    paths = write_index(root)
    out.line(f"checked {len(targets)} built-in targets in {time.perf_counter() - t_all:.1f} s")
    for doc in rows:
        s = doc["summary"]
        out.line(f"  {doc['spec']['id'] + '/' + doc['target']['name']:<28} {s['badge']['message']:>7}  "
                 f"{s['outcome']}")
    out.line(f"index: {paths['html']}")
    return code


def cmd_fuzz(args, out: Out, argv) -> int:
    device = _setup_device(args, "fuzz")
    timeout = _timeout(args)
    from .fuzz import fuzz
    from .reproducer import safe_name
    from .targets_resolve import get_spec_or_usage, resolve

    spec = get_spec_or_usage(args.spec)
    resolved = resolve(spec.id, args.impl, device)
    only = _check_properties(args.properties)
    profile = _profile("fuzz", device)
    report_dir = Path(args.report) if args.report else (Path("reports") / "fuzz" / spec.id
                                                        / safe_name(resolved.target.name))
    return fuzz(spec, resolved, seconds=args.time, profile=profile, device=device, timeout=timeout,
                report_dir=report_dir, only=only, out=out, command=_command_line(argv), target_arg=args.impl)


def cmd_report(args, out: Out) -> int:
    from .reports import ReportValidationError, rerender

    p = Path(args.dir)
    if not p.exists():
        raise UsageError(f"no such file or directory: {args.dir}")
    targets = []
    if p.is_file() or (p / "report.json").is_file():
        targets = [p]
    else:
        targets = sorted(q.parent for q in p.glob("*/*/report.json"))
        if not targets:
            raise UsageError(f"no report.json in {args.dir} (nor in {args.dir}/<spec>/<target>/)")
    for t in targets:
        try:
            paths = rerender(t)
        except (ReportValidationError, ValueError) as e:
            raise UsageError(f"{t}: {_short(e, 300)}") from None
        out.line(f"re-rendered {paths['json']} -> {', '.join(paths[k].name for k in ('md', 'html', 'badge'))}")
    if len(targets) > 1 or not (p.is_file() or (p / "report.json").is_file()):
        idx = write_index(p)
        out.line(f"index: {idx['html']}")
    return 0


# ---- the index of a report root ------------------------------------------------------------------------------------
def write_index(root) -> dict[str, Path]:
    """``root/index.md`` and ``root/index.html``: every ``root/<spec>/<target>/report.json``, with badge and counts."""
    import html
    import json

    from .reports import as_float

    root = Path(root)
    rows = []
    for p in sorted(root.glob("*/*/report.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            s = doc["summary"]
        except (OSError, ValueError, KeyError):
            continue
        rel = p.parent.relative_to(root).as_posix()
        rows.append((doc, s, rel))
    md = ["# rnnconf conformance reports", "",
          "Skipped (not judged here) never counts as passed: a grey badge means incomplete.", "",
          "| spec | target | kind | badge | passed / required | failed | errored | skipped | n/a | time | report |",
          "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    hrows = []
    for doc, s, rel in rows:
        c = s["counts"]
        dur = as_float(doc.get("duration_s")) or 0.0
        md.append(f"| {doc['spec']['id']} | `{doc['target']['name']}` | {doc['target']['kind']} | "
                  f"![badge]({rel}/badge.svg) | {s['required_passed']}/{s['required_total']} | {c['failed']} | "
                  f"{c['errored']} | {c['skipped']} | {c['not-applicable']} | {dur:.1f} s | "
                  f"[html]({rel}/report.html) · [md]({rel}/report.md) |")
        e = html.escape
        hrows.append(f"<tr class='{e(s['outcome'])}'><td>{e(doc['spec']['id'])}</td>"
                     f"<td><code>{e(doc['target']['name'])}</code></td><td>{e(doc['target']['kind'])}</td>"
                     f"<td><img src='{e(rel)}/badge.svg' alt='{e(s['badge']['message'])}'></td>"
                     f"<td>{s['required_passed']}/{s['required_total']}</td><td>{c['failed']}</td>"
                     f"<td>{c['errored']}</td><td>{c['skipped']}</td><td>{c['not-applicable']}</td>"
                     f"<td>{dur:.1f} s</td><td><a href='{e(rel)}/report.html'>report</a></td></tr>")
    n_fail = sum(1 for _, s, _ in rows if s["outcome"] == "fail")
    n_inc = sum(1 for _, s, _ in rows if s["outcome"] == "incomplete")
    md += ["", f"{len(rows)} targets: {len(rows) - n_fail - n_inc} pass, {n_fail} fail, {n_inc} incomplete."]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rnnconf conformance reports</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}} td:nth-child(n+5){{text-align:right}}
tr.fail{{background:#fdecea}} tr.incomplete{{background:#f4f4f4}} img{{vertical-align:middle}}
</style></head><body>
<h1>rnnconf conformance reports</h1>
<p>Skipped (not judged here) never counts as passed: a grey badge means incomplete.</p>
<table><thead><tr><th>spec</th><th>target</th><th>kind</th><th>badge</th><th>passed / required</th><th>failed</th>
<th>errored</th><th>skipped</th><th>n/a</th><th>time</th><th>report</th></tr></thead><tbody>
{chr(10).join(hrows)}
</tbody></table>
<p>{len(rows)} targets: {len(rows) - n_fail - n_inc} pass, {n_fail} fail, {n_inc} incomplete.</p>
</body></html>
"""
    root.mkdir(parents=True, exist_ok=True)
    paths = {"md": root / "index.md", "html": root / "index.html"}
    for k, text in (("md", "\n".join(md) + "\n"), ("html", page)):
        tmp = paths[k].with_suffix(paths[k].suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, paths[k])
    return paths


# ---- entry point ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Out()
    try:
        args = build_parser().parse_args(argv)
        if args.cmd == "list":
            return cmd_list(args, out)
        if args.cmd == "check":
            return cmd_check(args, out, argv)
        if args.cmd == "fuzz":
            return cmd_fuzz(args, out, argv)
        if args.cmd == "report":
            return cmd_report(args, out)
        raise UsageError(f"unknown command {args.cmd!r}")
    except UsageError as e:
        if out._live:
            out.line()
        sys.stderr.write(f"rnnconf: error: {e}\n")
        sys.stderr.flush()
        return 2
    except KeyboardInterrupt:
        out.line()
        sys.stderr.write("rnnconf: interrupted\n")
        return 130


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
