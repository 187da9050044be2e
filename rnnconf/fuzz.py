"""``rnnconf fuzz``: random search against one target until the time is up or the first failure.

Unlike ``check`` the search is not derandomized: the ``fuzz`` profile with Hypothesis's persistent example database
in ``.rnnconf/examples``, so a failure found once is replayed first on the next run.  After the smoke call
(:func:`rnnconf.session.smoke_phase`), the properties are scheduled **round-robin**: every round gives each item
(each dtype of ``all_dtypes`` properties, each autotune variant) one time slice of at most :data:`ROUND_EXAMPLES`
examples, with the slice sized so that the first round fits in about half the time box.  Sizes grow by round —
round 1 draws every size ≤ 8, round 2 at the ``ci`` profile's sizes, round 3 at ``dev``'s, later rounds at
``fuzz``'s — so that a short time box still reaches every property and a long one spends its time on large shapes.

The first failed, errored or crashed verdict ends the run (exit 1) with its counterexample and a pytest reproducer.
When the time box ends before every required property ran an example, the run exits 1 and names the ones that did
not: a time box too short for the target is not a pass.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

ROUND_EXAMPLES = 25
MIN_SLICE_S = 0.5
ROUND_SIZES = ("tiny", "ci", "dev")  # size caps of rounds 1, 2, 3; then the fuzz profile's own
TINY = 8  # round 1: every size at most this (ci's caps otherwise), so one round reaches every property quickly


def _quiet(_text) -> None:
    pass


def _round_profile(profile, r: int):
    from .properties.profiles import PROFILES

    if r > len(ROUND_SIZES):
        return profile
    name = ROUND_SIZES[r - 1]
    caps = PROFILES["ci" if name == "tiny" else name].size_caps
    if name == "tiny":
        caps = {k: min(v, TINY) for k, v in caps.items()}
    return dataclasses.replace(profile, size_caps=dict(caps))


def fuzz(spec, resolved, *, seconds: float, profile, device: str, timeout: float, report_dir, only, out, command: str,
         target_arg: str, isolate: bool = True, verbose: bool = False, fail_on=None) -> int:
    from hypothesis.reporting import with_reporter

    from .isolate import Worker, plan, run_item
    from .progress import Live
    from .session import BAD, TargetRun, finish_target, forward_only_verdict, print_summary, smoke_phase, target_line
    from .targets_resolve import autotune_variants

    target = resolved.target
    variants = []
    if resolved.origin == "adapter":
        try:
            variants = autotune_variants(target_arg)
        except Exception as e:  # noqa: BLE001
            out.line(f"  (autotune variants unavailable: {type(e).__name__}: {e})")
    vmap = {lab: t for lab, t in variants if lab}
    items = plan(spec, target, variants, only=only)
    started = time.time()
    deadline = started + seconds
    out.line(f"rnnconf fuzz: {target.id} ({target.kind}) for {seconds:g} s — {len(items)} items, round-robin, sizes "
             f"growing by round (≤ {TINY}, ci, dev, then {profile.name}), random with the example database "
             f".rnnconf/examples, device {device}, {'isolated' if isolate else 'in this process'}, per-call timeout "
             f"{timeout:g} s")
    run = TargetRun(resolved, [], started=started)
    worker = Worker(spec.id, resolved.canonical, device, profile.name, timeout, name=target.name) if isolate else None
    totals, worst, measured, secs, final = {}, {}, {}, {}, {}
    rounds, failure, hung_in = 0, None, None
    display = Live(int(seconds), 1).__enter__()
    slot = display.slot(1, target.id, len(items))
    try:
        smoke, early = smoke_phase(spec, run, items, worker, device)
        deadline = time.time() + seconds  # the time box is for searching: the worker's start and smoke call aside
        target = run.resolved.target
        if early is not None:
            run.results = early
        else:
            # not applicable, not claimed, skipped by the target/backend, forward-only: decided without drawing
            live = []
            for it in items:
                v = forward_only_verdict(spec, target, it) if smoke.grad is False else None
                if v is None and _decided_without_examples(it, spec, target, vmap, device):
                    v = run_item(it, spec, target, profile, max_examples=1, variants=vmap).verdict
                if v is not None:
                    final[it.key] = v
                else:
                    live.append(it)
            for it in live:
                totals[it.key], worst[it.key], measured[it.key], secs[it.key] = 0, 0.0, False, 0.0
            while live and time.time() < deadline and failure is None and hung_in is None:
                rounds += 1
                prof = _round_profile(profile, rounds)
                left = deadline - time.time()
                slice_s = max(MIN_SLICE_S, left / (2 * len(live)) if rounds == 1 else left / len(live))
                for it in live:
                    if time.time() >= deadline:
                        break

                    def progress(n, it=it):
                        slot.item(0, f"round {rounds}: {it.display} {it.dtype}", totals[it.key] + n)
                        display.set_completed(min(seconds, time.time() - started))

                    n_max = it.max_examples or ROUND_EXAMPLES
                    slot.item(0, f"round {rounds}: {it.display} {it.dtype}", totals[it.key])
                    if worker is not None:
                        o = worker.run(it, on_example=progress, budget=slice_s, deadline=deadline,
                                       size_caps=dict(prof.size_caps), max_examples=n_max)
                    else:
                        with with_reporter(_quiet):  # no "@seed(...)" advice when a slice ends
                            o = run_item(it, spec, target, prof, max_examples=n_max, variants=vmap,
                                         on_example=progress, budget=slice_s, deadline=deadline)
                    v = o.verdict
                    run.meas += o.measurements
                    totals[it.key] += v.examples
                    secs[it.key] += v.seconds
                    if v.worst_ratio is not None and v.status in ("passed", "failed"):
                        worst[it.key] = max(worst[it.key], v.worst_ratio)
                        measured[it.key] = True
                    if v.status in BAD:
                        failure = (it, v)
                        hung_in = it.display if o.hung else None
                        break
                    if v.status == "passed":
                        final[it.key] = v
                out.line(f"  round {rounds}: {sum(totals.values())} examples so far, "
                         f"{max(0.0, deadline - time.time()):.0f} s left")
            run.results = _aggregate(items, final, failure, totals, worst, measured, secs, spec, target, hung_in)
    finally:
        slot.close()
        display.__exit__(None, None, None)
        if worker is not None:
            worker.close()
        run.finished = time.time()
    unreached = [it for it, v in run.results if it is not None and v.required and v.status == "skipped"
                 and v.reason.startswith(NOT_REACHED)]
    out.line(f"fuzzed {sum(totals.values())} examples in {run.finished - started:.0f} s over {rounds} round(s)")
    _print_examples(run.results, out)
    doc, code, paths = finish_target(spec, run, report_dir=Path(report_dir), profile=profile, device=device,
                                     timeout=timeout, isolate=isolate, command=command, out=out,
                                     target_arg=target_arg, verbose=verbose, fail_on=fail_on,
                                     extra={"fuzz": {"seconds": seconds, "rounds": rounds,
                                                     "examples": sum(totals.values()),
                                                     "not_reached": [it.key for it in unreached]}})
    if doc is not None:
        out.line(target_line(doc, paths["html"]))
        print_summary([(doc, report_dir)], out, run.finished - started)
        out.line(f"report: {paths['html']}")
    if unreached:
        out.line(f"not reached before the time ran out ({len(unreached)} required): "
                 + ", ".join(f"{it.display} ({it.dtype})" for it in unreached) + " — give --time more")
        return 1
    if failure is not None:
        return 1
    return code


NOT_REACHED = "not judged: the time ran out before"


def _aggregate(items, final, failure, totals, worst, measured, secs, spec, target, hung_in):
    """One verdict per item over every round."""
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict

    results = []
    for it in items:
        req = PROPERTIES[it.prop].required
        if failure is not None and it.key == failure[0].key:
            v = failure[1]
            v.examples = totals[it.key]
        elif it.key in final and it.key not in totals:  # decided without drawing
            v = final[it.key]
        elif totals.get(it.key):
            v = final.get(it.key) or Verdict(it.display, target.id, spec.id, it.dtype, "passed", required=req)
            v.status, v.reason = "passed", f"{totals[it.key]} examples over the fuzz rounds"
            v.examples, v.seconds = totals[it.key], secs[it.key]
            v.worst_ratio = worst[it.key] if measured[it.key] else None
        elif hung_in is not None:
            v = Verdict(it.display, target.id, spec.id, it.dtype, "not-run", reason=f"not run: target hung in "
                        f"{hung_in}", required=req)
            v.failure_class = "defect" if hasattr(v, "failure_class") else None
        elif failure is not None:
            v = Verdict(it.display, target.id, spec.id, it.dtype, "skipped", required=req,
                        reason="not judged: the fuzz run stopped at the first failure")
        else:
            v = Verdict(it.display, target.id, spec.id, it.dtype, "skipped", required=req,
                        reason=f"{NOT_REACHED} this property ran an example")
        results.append((it, v))
    return results


def _print_examples(results, out):
    """Examples per property, one line each: ``oracle: float64 12 · float32 10 · float16 9 (worst 0.31× bound)``."""
    rows: dict[str, list] = {}
    for it, v in results:
        if it is not None:
            rows.setdefault(it.display, []).append(v)
    out.line("examples per property:")
    for name, vs in rows.items():
        bits = []
        for v in vs:
            n = str(v.examples) if v.status in ("passed", "failed", "errored", "crashed") else \
                {"not-applicable": "n/a", "skipped": "—", "not-run": "not run"}.get(v.status, v.status)
            bits.append(f"{v.dtype} {n}" if len(vs) > 1 else n)
        ws = [v.worst_ratio for v in vs if v.worst_ratio is not None and v.status == "passed"]
        tail = f"  (worst {max(ws):.3g}× bound)" if ws else ""
        out.line(f"  {name:<28} {' · '.join(bits)}{tail}")


def _decided_without_examples(it, spec, target, vmap, device) -> bool:
    """Not applicable, not in the target's dtypes, or skipped by the target/backend: no drawing involved."""
    import torch

    from .properties.checks import PROPERTIES
    from .properties.runner import dtype_unrunnable

    prop = PROPERTIES[it.prop]
    t = target if it.variant is None else vmap[it.variant]
    dt = getattr(torch, it.dtype)
    return bool(prop.not_applicable(spec, t) or dt not in t.dtypes
                or t.skip_reason(prop.name, dt, "grad" in prop.requires)
                or (prop.unjudgeable and prop.unjudgeable(spec, t)) or dtype_unrunnable(t, dt, device))
