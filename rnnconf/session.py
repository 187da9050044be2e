"""One target's conformance run, from the smoke call to the written report — shared by ``check`` and ``fuzz``.

:func:`run_target` first makes the smoke call (:mod:`rnnconf.properties.smoke`).  A target that cannot be called
gets one ``uncallable`` verdict (one that crashed its worker there: one ``crashed`` verdict) and nothing else runs;
one that hung there gets one ``errored`` verdict and every item ``not-run``.  Otherwise every item runs — in the
supervised worker (:class:`rnnconf.isolate.Worker`, the default) or in this process — each time-boxed by
``budget`` seconds when given.  After the first call that runs past the per-call timeout, the remaining items are
``not-run: target hung in <property>``; a forward-only target (outputs without autograd history) gets its gradient
properties as ``not-applicable`` with that reason.

:func:`finish_target` writes reproducers and the report; :func:`target_line` and :func:`print_summary` are what a
person reads: one line per target, and the totals with each failure's one-line reason and report path.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

STATUS_SHORT = {"passed": "passed", "failed": "FAILED", "errored": "ERRORED", "skipped": "skipped",
                "not-applicable": "n/a", "crashed": "CRASHED", "uncallable": "UNCALLABLE", "not-run": "not run"}
BAD = ("failed", "errored", "crashed", "uncallable", "not-run")
DTYPES = ("float64", "float32", "float16", "bfloat16")
FORWARD_ONLY = ("forward-only target: its outputs carry no autograd history when the inputs require grad (observed "
                "in the smoke call), so gradients are not judged")


@dataclass
class TargetRun:
    resolved: object  # Resolved, with the kind the smoke call observed
    results: list  # [(Item, Verdict)]
    meas: list = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    smoke: object = None  # SmokeResult


def short(text, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _defect(v):
    if getattr(v, "failure_class", "") is None:
        v.failure_class = "defect"
    return v


def _smoke_verdict(spec, target, status: str, reason: str):
    from .properties.runner import Verdict, describe_example, dtype_name, primary_dtype
    from .properties.smoke import SMOKE_PROP, smallest_example

    dt = primary_dtype(target)
    v = Verdict(SMOKE_PROP, target.id, spec.id, dtype_name(dt), status, reason=reason, required=True)
    try:
        v.counterexample = describe_example(smallest_example(spec, target, dt))
    except Exception:  # noqa: BLE001  (a description only)
        pass
    return _defect(v)


def _not_run(spec, target, it, why: str):
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict

    return _defect(Verdict(it.display, target.id, spec.id, it.dtype, "not-run", reason=why,
                           required=PROPERTIES[it.prop].required))


def smoke_phase(spec, run: TargetRun, items, worker, device):
    """The smoke call (in ``worker`` when given).  Returns ``(smoke, early)``: ``early`` is the whole result list
    when the run stops here (uncallable, crashed, hung), else None; ``run.resolved`` gets the observed kind."""
    from .properties.smoke import SMOKE_PROP, smoke_call

    resolved = run.resolved
    target = resolved.target
    smoke = worker.smoke() if worker is not None else smoke_call(spec, target, device)
    run.smoke = smoke
    if not smoke.ok:
        status = "errored" if smoke.hung else "crashed" if getattr(smoke, "crashed", False) else "uncallable"
        early = [(None, _smoke_verdict(spec, target, status, smoke.reason))]
        if smoke.hung:
            early += [(it, _not_run(spec, target, it, f"not run: target hung in {SMOKE_PROP}")) for it in items]
        return smoke, early
    if resolved.origin in ("module", "file") and smoke.triton is not None:  # the kind, observed at run time
        kind = "triton" if smoke.triton else "external"
        note = ("the smoke call launched a Triton kernel: a Triton target, the backend dtype self-test applies"
                if smoke.triton else "the smoke call launched no Triton kernel: judged as a plain function")
        run.resolved = dataclasses.replace(resolved, target=dataclasses.replace(target, kind=kind),
                                           notes=tuple(resolved.notes) + (note,))
        if worker is not None:
            worker.kind = kind
    return smoke, None


def forward_only_verdict(spec, target, it):
    """The gradient properties of a target whose smoke call showed outputs without autograd history."""
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict

    if "grad" not in PROPERTIES[it.prop].requires:
        return None
    return Verdict(it.display, target.id, spec.id, it.dtype, "not-applicable", reason=FORWARD_ONLY,
                   required=PROPERTIES[it.prop].required)


def run_target(spec, resolved, *, items, profile, device, examples, isolate, timeout, out, budget=None,
               variants=(), slot=None, verbose=False, threads=None) -> TargetRun:
    """Smoke call, then every item (see the module docstring).  ``slot``: a :class:`rnnconf.progress.Slot`."""
    from .isolate import Worker, run_item

    target = resolved.target
    vmap = {lab: t for lab, t in variants if lab}
    run = TargetRun(resolved, [], started=time.time())
    worker = Worker(spec.id, resolved.canonical, device, profile.name, timeout, examples, name=target.name,
                    threads=threads) if isolate else None
    width = max((len(it.display) for it in items), default=10)
    try:
        smoke, early = smoke_phase(spec, run, items, worker, device)
        if early is not None:
            run.results += early
            if slot is not None:
                slot.advance(len(items))
            return run
        resolved, target = run.resolved, run.resolved.target
        hung_in = None
        for i, it in enumerate(items, 1):
            head = f"  [{i:>{len(str(len(items)))}}/{len(items)}] {it.display:<{width}} {it.dtype:<9}"
            if slot is not None:
                slot.item(i, f"{it.display} {it.dtype}")
            if hung_in is not None:
                v = _not_run(spec, target, it, f"not run: target hung in {hung_in}")
                o = None
            elif smoke.grad is False and forward_only_verdict(spec, target, it) is not None:
                v, o = forward_only_verdict(spec, target, it), None
            else:
                def progress(n, i=i, it=it):
                    if slot is not None:
                        slot.item(i, f"{it.display} {it.dtype}", n)

                if worker is not None:
                    o = worker.run(it, on_example=progress, budget=budget)
                else:
                    o = run_item(it, spec, target, profile, max_examples=examples, variants=vmap,
                                 on_example=progress, budget=budget)
                v = o.verdict
                run.meas += o.measurements
                if o.hung:
                    hung_in = it.display
            run.results.append((it, v))
            if slot is not None:
                slot.advance()
            if verbose:
                out.line(f"{head} {fmt_verdict(v)}")
                if v.status in BAD and v.status != "not-run":
                    out.line(f"      {short(v.reason, 300)}")
    finally:
        if worker is not None:
            worker.close()
        run.finished = time.time()
    return run


# ---- printing -------------------------------------------------------------------------------------------------------
def fmt_verdict(v) -> str:
    s = f"{STATUS_SHORT[v.status]:<8}"
    if v.status in ("passed", "failed", "errored", "crashed"):
        s += f" {v.examples:>4} examples {v.seconds:7.1f} s"
        if v.status == "passed" and v.worst_ratio:
            s += f"  worst {v.worst_ratio:.3g}× bound"
        elif v.status == "failed" and v.observed is not None and v.bound:
            s += f"  {v.observed / v.bound:.3g}× bound"
        if getattr(v, "failure_class", None):
            s += f"  [{v.failure_class}]"
    elif v.reason:
        s += f" {short(v.reason, 90)}"
    return s


def verdict_table(results, out):
    rows: dict[str, dict] = {}
    for it, v in results:
        rows.setdefault(v.prop, {})[v.dtype] = v.status
    dts = [d for d in DTYPES if any(d in r for r in rows.values())]
    w = max([len(k) for k in rows] + [8])
    out.line()
    out.line((f"  {'property':<{w}}  " + "  ".join(f"{d:<9}" for d in dts)).rstrip())
    out.line(f"  {'-' * w}  " + "  ".join("-" * 9 for _ in dts))
    for name, r in rows.items():
        out.line((f"  {name:<{w}}  " + "  ".join(f"{STATUS_SHORT.get(r.get(d, ''), ''):<9}" for d in dts)).rstrip())


def summary_line(doc) -> str:
    s = doc["summary"]
    c = s["counts"]
    extra = "".join(f", {c[k]} {k}" for k in ("crashed", "uncallable", "not-run") if c.get(k))
    return (f"{c['passed']} passed, {c['failed']} failed, {c['errored']} errored{extra}, {c['skipped']} skipped, "
            f"{c['not-applicable']} not applicable — required {s['required_passed']}/{s['required_total']} passed "
            f"[{s['outcome']}]")


def target_line(doc, report_html) -> str:
    """``✓ hgrn/sequential  pass 40/40 · 12.3 s`` — one line per finished target."""
    s = doc["summary"]
    c = s["counts"]
    mark = {"pass": "✓", "fail": "✗", "incomplete": "·"}[s["outcome"]]
    bits = [f"{c[k]} {STATUS_SHORT[k]}" for k in ("failed", "errored", "crashed", "uncallable", "not-run", "skipped")
            if c.get(k)]
    classes = sorted({v.get("failure_class") for v in doc["verdicts"] if v["status"] in BAD and v.get("failure_class")})
    name = _display(doc)
    line = (f"  {mark} {name:<34} {s['outcome']:<10} {s['required_passed']:>3}/{s['required_total']:<3} "
            f"{doc['duration_s']:6.1f} s" + (f"  {', '.join(bits)}" if bits else "")
            + (f" [{', '.join(classes)}]" if classes else ""))
    if s["outcome"] == "fail":
        line += f"  → {report_html}"
    return line


def _display(doc) -> str:
    n = doc["target"]["name"]
    return n if "/" in n else f"{doc['spec']['id']}/{n}"


def print_summary(entries, out, seconds: float):
    """``entries``: ``[(doc, report_dir)]``.  Totals, then one line per failure with its class, and where to look."""
    tot: dict[str, int] = {}
    outcomes = {"pass": 0, "fail": 0, "incomplete": 0}
    for doc, _ in entries:
        outcomes[doc["summary"]["outcome"]] += 1
        for k, n in doc["summary"]["counts"].items():
            tot[k] = tot.get(k, 0) + n
    out.line()
    out.line(f"Summary: {len(entries)} target(s) in {seconds:.1f} s — {outcomes['pass']} pass, {outcomes['fail']} "
             f"fail, {outcomes['incomplete']} incomplete (skipped ≠ passed)")
    out.line("  verdicts: " + ", ".join(f"{tot[k]} {STATUS_SHORT[k]}" for k in STATUS_SHORT if tot.get(k)))
    fails = [(doc, rd, v) for doc, rd in entries for v in doc["verdicts"] if v["status"] in BAD
             and v["status"] != "not-run" and v.get("required", True)]
    if fails:
        out.line(f"Failures ({len(fails)}):")
    repros = {}
    for doc, rd, v in fails:
        cls = f" [{v['failure_class']}]" if v.get("failure_class") else ""
        out.line(f"  {STATUS_SHORT[v['status']]}{cls} {_display(doc)} {v['prop']} ({v['dtype']}): "
                 f"{short(v.get('reason') or '', 220)}")
        repros = ((doc.get("extra") or {}).get("reproducers") or {}).get(f"{v['prop']}-{v['dtype']}")
        where = f"    report: {Path(rd) / 'report.html'}"
        if repros:
            where += f" · reproducer: {Path(rd) / repros['reproducer']}"
        out.line(where)


# ---- the report -----------------------------------------------------------------------------------------------------
def _clear_generated(report_dir: Path) -> None:
    """Remove what an earlier run wrote here and this one may not (reproducers and counterexamples of verdicts that
    now pass, plots of properties no longer run): a report directory holds one run's files only."""
    if not report_dir.is_dir():
        return
    for pat in ("repro_*.py", "counterexamples/*.pt", "plot-*.svg"):
        for f in report_dir.glob(pat):
            f.unlink()


def finish_target(spec, run: TargetRun, *, report_dir, profile, device, timeout, isolate, command, out,
                  target_arg: str, extra=None, verbose=False, fail_on=None):
    """Write reproducers and the report for one target.  Returns ``(doc, exit_code, paths)``; ``doc`` and
    ``paths`` are None when the report could not be written (an rnnconf defect, said in one line)."""
    from .reports import build_report, write_report
    from .reproducer import write_reproducer
    from .spec.errors import ANY_TRAITS

    resolved, results = run.resolved, run.results
    target = resolved.target
    report_dir = Path(report_dir)
    _clear_generated(report_dir)
    repros = {}
    for it, v in results:
        if it is not None and v.status in BAD and v.status != "not-run":
            try:
                got = write_reproducer(v, report_dir, item=it, target=resolved.canonical, name=target.name,
                                       device=device, profile=profile.name, timeout=timeout, command=command)
            except Exception as e:  # noqa: BLE001  (an example torch cannot save: say so, keep the report)
                out.line(f"  (could not save the counterexample of {it.key}: {type(e).__name__}: {e})")
                got = None
            if got:
                repros[it.key] = {"reproducer": got[0].name, "counterexample": f"counterexamples/{got[1].name}"}
    traits = target.traits.describe()
    if resolved.origin in ("module", "file") and target.traits == ANY_TRAITS:
        traits += " (ANY_TRAITS: the most permissive derived error model — the target declares no traits)"
    ex = {"target_string": target_arg, "resolved_as": resolved.origin, "rebuild_with": resolved.canonical,
          "notes": list(resolved.notes), "doc": target.doc, "supports": sorted(target.supports),
          "dtypes": [str(d).replace("torch.", "") for d in target.dtypes], "command": command,
          "isolate": bool(isolate), "call_timeout_s": timeout, "reproducers": repros, "measurements": run.meas}
    if run.smoke is not None:
        ex["smoke_call"] = run.smoke.to_json()
    ex.update(extra or {})
    verdicts = [v for _, v in results]
    code = exit_status(verdicts, fail_on)
    try:
        doc = build_report(verdicts, spec=spec, target_name=target.name, target_kind=target.kind, traits=traits,
                           profile=profile.name, device=device, started=run.started, finished=run.finished, extra=ex)
        paths = write_report(doc, report_dir)
    except Exception as e:  # noqa: BLE001  (an rnnconf defect: say so, keep the verdicts, never pass)
        verdict_table(results, out)
        out.line(f"  rnnconf internal error: could not write the report to {report_dir}: {type(e).__name__}: "
                 f"{short(e, 300)}")
        return None, 1, None
    if verbose:
        verdict_table(results, out)
        out.line()
        out.line(f"  {target.id}: {summary_line(doc)}")
    return doc, code, paths


def exit_status(verdicts, fail_on=None) -> int:
    """runner.exit_code (failure classes, ``--fail-on``) where present; else 1 on any required non-passing one."""
    from .properties import runner

    if hasattr(runner, "exit_code"):
        return runner.exit_code(verdicts, fail_on) if fail_on else runner.exit_code(verdicts)
    return 1 if any(v.required and v.status in BAD for v in verdicts) else 0
