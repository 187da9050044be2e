"""``rnnconf fuzz``: random search against one target until the time is up or the first failure.

Unlike ``check`` the search is not derandomized: the ``fuzz`` profile (larger shapes) with Hypothesis's persistent
example database in ``.rnnconf/examples``, so a failure found once is replayed first on the next run.  Properties are
cycled in rounds of :data:`ROUND_EXAMPLES` examples each (every dtype of ``all_dtypes`` properties, plus each autotune
variant of an adapter), so a long run spreads over all of them.  The first failed or errored verdict ends the run:
its counterexample and a pytest reproducer are written next to the report, and the exit status is 1.
"""
from __future__ import annotations

import time
from pathlib import Path

ROUND_EXAMPLES = 25
MIN_SLICE_S = 5.0


def _quiet(_text) -> None:
    pass


def _passed(it, spec, target, n: int):
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict

    return Verdict(it.display, target.id, spec.id, it.dtype, "passed", examples=n,
                   required=PROPERTIES[it.prop].required)


def fuzz(spec, resolved, *, seconds: float, profile, device: str, timeout: float, report_dir, only, out, command: str,
         target_arg: str) -> int:
    from hypothesis.reporting import with_reporter

    from .cli import finish_target
    from .isolate import TimeUp, plan, run_item
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
    out.line(f"rnnconf fuzz: {target.id} ({target.kind}) for {seconds:g} s — {len(items)} items, profile "
             f"{profile.name} (random, example database .rnnconf/examples), device {device}")
    # not-applicable and skipped items are decided without drawing: settle them once, up front
    final: dict[str, tuple] = {}
    live = []
    for it in items:
        o = run_item(it, spec, target, profile, max_examples=1, variants=vmap, deadline=None) \
            if _decided_without_examples(it, spec, target, vmap) else None
        if o is not None:
            final[it.key] = (it, o.verdict)
        else:
            live.append(it)
    totals = {it.key: 0 for it in live}
    worst = {it.key: 0.0 for it in live}
    secs = {it.key: 0.0 for it in live}
    meas: list = []
    rounds = 0
    failure = None
    # each item gets a time slice per round (and at most ROUND_EXAMPLES examples), so that even a short run with
    # slow examples (fuzz shapes make the oracle slow) visits every property
    slice_s = max(MIN_SLICE_S, seconds / (2 * max(1, len(live))))
    while live and time.time() < deadline and failure is None:
        rounds += 1
        for it in live:
            if time.time() >= deadline:
                break
            seen = {"n": 0}

            def progress(n, it=it, seen=seen):
                seen["n"] = n
                out.live(f"  round {rounds}: {it.display} {it.dtype} … {totals[it.key] + n} examples")

            t0 = time.perf_counter()
            try:
                with with_reporter(_quiet):  # no "@seed(...)" advice when the slice ends
                    o = run_item(it, spec, target, profile, max_examples=it.max_examples or ROUND_EXAMPLES,
                                 variants=vmap, on_example=progress, deadline=min(deadline, time.time() + slice_s))
            except TimeUp:
                totals[it.key] += seen["n"]
                secs[it.key] += time.perf_counter() - t0
                if it.key not in final and seen["n"]:
                    final[it.key] = (it, _passed(it, spec, target, seen["n"]))
                continue
            v = o.verdict
            meas += o.measurements
            totals[it.key] += v.examples
            secs[it.key] += v.seconds
            worst[it.key] = max(worst[it.key], v.worst_ratio)
            if v.status in ("failed", "errored"):
                failure = (it, v)
                break
            final[it.key] = (it, v)
        out.line(f"  round {rounds}: {sum(totals.values())} examples so far, "
                 f"{max(0.0, deadline - time.time()):.0f} s left")
    # aggregate: one verdict per item over every round
    results = []
    for it in items:
        if failure is not None and it.key == failure[0].key:
            v = failure[1]
            v.examples = totals[it.key]
            results.append((it, v))
        elif it.key in final:
            _, v = final[it.key]
            if it.key in totals:
                v.examples, v.worst_ratio, v.seconds = totals[it.key], worst[it.key], secs[it.key]
                if v.examples == 0:
                    v.status, v.reason = "skipped", "not judged: no example ran before the fuzz run ended"
            results.append((it, v))
        else:
            from .properties.checks import PROPERTIES
            from .properties.runner import Verdict

            why = ("not run: the fuzz run stopped at the first failure" if failure is not None
                   else "not run: the time ran out before this property's turn")
            results.append((it, Verdict(it.display, target.id, spec.id, it.dtype, "skipped", reason=why,
                                        examples=totals.get(it.key, 0), required=PROPERTIES[it.prop].required)))
    finished = time.time()
    out.line(f"fuzzed {sum(totals.values())} examples in {finished - started:.0f} s over {rounds} round(s)")
    _, code = finish_target(spec, resolved, results, meas, started, finished, report_dir=Path(report_dir),
                            profile=profile, device=device, timeout=timeout, isolate=False, command=command,
                            out=out, target_arg=target_arg,
                            extra={"fuzz": {"seconds": seconds, "rounds": rounds,
                                            "examples": sum(totals.values())}})
    if failure is not None:
        return 1
    return code


def _decided_without_examples(it, spec, target, vmap) -> bool:
    """Not applicable, not in the target's dtypes, or skipped by the target/backend: no drawing involved."""
    import torch

    from .properties.checks import PROPERTIES
    from .properties.runner import dtype_unrunnable

    prop = PROPERTIES[it.prop]
    t = target if it.variant is None else vmap[it.variant]
    dt = getattr(torch, it.dtype)
    return bool(prop.not_applicable(spec, t) or dt not in t.dtypes or t.skip_reason(prop.name, dt)
                or dtype_unrunnable(t, dt, "cpu"))
