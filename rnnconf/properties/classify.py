"""Failure classes: what kind of finding a non-passing verdict is, and the naive same-precision baseline.

* ``defect`` — a structural property is violated (causality, state carry's bitwise parts, independence, NaN/Inf
  where the oracle is finite, nondeterminism, wrong shape or arity, a crash, a raise or a hang), or an error beyond
  the bound that exceeds 2× the error of the naive same-precision baseline;
* ``precision`` — beyond the derived bound, but within 2× that baseline;
* ``dtype-contract`` — an output or state dtype differs from the contract's, or a dtype is accepted and silently
  computed at a lower precision.

The **baseline** is the spec's reference form (``spec.extra["reference_form"]``, a built-in plain-torch form) run at
the target's dtype on the failing example: the same property check is replayed with the reference form in the
target's place, and the tensor it produces under the failing label is taken (``Ctx.capture``), so every property
that compares with :meth:`Ctx.expect_close` gets a baseline without special-casing.  Errors are compared in units
of the target's per-element bound, r = max_i |err_i|/b_i, so that elements of different scale are comparable — this is
flash-attention's acceptance rule (max error ≤ 2× that of the same-precision PyTorch reference) in bound units.

Rules for a numeric failure of the target at dtype d (r > 1), in order:

1. *Lower precision* (dtype-contract).  For a format p a kernel plausibly computes in instead of d (float64 →
   float32; float32 → tf32/float16 or bfloat16), k = u_p/u_d, the first p with r ≤ k: the error is within the bound
   scaled to p's roundoff (the bound is linear in u up to O(u²) and the underflow floor).  It is a dtype-contract
   finding when also √k < r — the error is nearer, on a log scale, to p's roundoff than to d's — and, where the
   reference form runs at p, plain torch computing in p errs as much (r ≤ 2·r_b(p)) while itself within p's bound
   (r_b(p) ≤ k: otherwise the example is ill-conditioned in p and cannot tell a lower precision from a defect).
2. *Baseline* r_b at d: r ≤ 2·r_b → ``precision``, else ``defect``.
3. *No baseline* (the spec names no reference form, it does not accept d, or it cannot run the property): r ≤ 2 →
   ``precision``, else ``defect``.  The reference form conforms (tests/properties checks each built-in one), so its
   error is at most the bound, r_b ≤ 1, and r > 2 exceeds 2× any conforming baseline; r ≤ 2 cannot be shown a defect.

A comparison whose expected value is not exact (``expect_close(..., against_oracle=False)``: the target against
itself, e.g. associativity) is structural.  Several findings on one verdict (a wrong output dtype, and the numeric
verdict judged on the cast output) are combined by precedence ``defect`` > ``dtype-contract`` > ``precision``: the
class is the most severe finding, since a defect stays one whatever the dtype story, and a dtype that is not the
contract's is a finding whether the cast values are near or not.
"""
from __future__ import annotations

import math

import torch

from ..spec.errors import unit_roundoff
from .calling import PropertyFailure
from .context import Captured, Ctx

CLASSES = ("defect", "dtype-contract", "precision")  # most severe first: the precedence
# the formats a kernel plausibly computes in instead of the one it was given, finest first: float32 for float64;
# tf32 (float16's roundoff) or bfloat16 for float32
_COARSER = {torch.float64: ("float32",), torch.float32: ("float16", "bfloat16")}


def worst_class(classes) -> str | None:
    """The most severe of ``classes`` (``None`` entries ignored)."""
    present = [c for c in classes if c]
    return min(present, key=CLASSES.index) if present else None


def baseline_observed(check, ctx: Ctx, example: dict, what: str, dtype: torch.dtype):
    """Replay ``check`` with the spec's reference form in the target's place at ``dtype``; the tensor it compares
    under the label ``what``, or a string saying why there is none."""
    from ..registry import get_form

    spec = ctx.spec
    name = spec.extra.get("reference_form")
    if name is None:
        return "the spec names no reference form"
    try:
        ref = get_form(f"{spec.id}/{name}")
    except Exception as e:  # noqa: BLE001
        return f"reference form {spec.id}/{name} not found ({e})"
    if dtype not in ref.dtypes:
        return f"{ref.id} does not accept {str(dtype).replace('torch.', '')}"
    rc = Ctx(spec, ref, dtype, ctx.profile, None, capture=what)
    try:
        check(rc, example)
    except Captured as c:
        return c.observed
    except Exception as e:  # noqa: BLE001  (the reference cannot run this property: no baseline, said so)
        return f"{ref.id} could not run this check ({type(e).__name__}: {str(e)[:160]})"
    return f"{ref.id} never produced {what!r}"


def _ratios(obs: torch.Tensor, num: dict):
    err = (obs.to(num["expected"].dtype) - num["expected"]).abs()
    err = torch.where(num["judged"], err, torch.zeros_like(err))
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    ratio = torch.where(err == 0, torch.zeros_like(err), err / num["bound"])
    return err, ratio


def classify_failure(e: PropertyFailure, check, ctx: Ctx, example: dict | None) -> tuple[str, str]:
    """(class, sentence to append to the failure message) for a PropertyFailure; sets ``e.baseline``."""
    num = getattr(e, "numeric", None)
    if not num or example is None:
        return "defect", ""
    d = num["dtype"]
    r = float(num["ratio"])
    ref = ctx.spec.extra.get("reference_form")
    for p in _COARSER.get(d, ()):
        k = unit_roundoff(p) / unit_roundoff(d)
        if r > k:
            continue
        if r <= math.sqrt(k):
            break
        pd = getattr(torch, p)
        obs = baseline_observed(check, ctx, example, num["what"], pd)
        note = f"within the bound scaled to {p}'s roundoff ({r:.3g}× ≤ {k:.3g}×)"
        if isinstance(obs, torch.Tensor) and obs.shape == num["expected"].shape:
            rb = float(_ratios(obs, num)[1].max())
            if r > 2 * rb or rb > k:
                break  # plain torch in p errs less than half as much, or beyond p's own bound (the example does
                # not discriminate): not explained by computing in p
            note += f"; plain torch {p}: {rb:.3g}× the bound"
        return "dtype-contract", (f" — dtype-contract: {str(d).replace('torch.', '')} accepted but computed at "
                                  f"about {p} precision ({note})")
    dn = str(d).replace("torch.", "")
    obs = baseline_observed(check, ctx, example, num["what"], d)
    if isinstance(obs, torch.Tensor) and obs.shape != num["expected"].shape:
        obs = f"its {num['what']} has shape {tuple(obs.shape)}"
    if not isinstance(obs, torch.Tensor):
        cls = "precision" if r <= 2 else "defect"
        return cls, (f" — {cls}: no same-precision baseline ({obs}); {r:.3g}× the bound "
                     f"{'≤' if r <= 2 else '>'} 2× (a conforming baseline errs at most 1×)")
    err, ratio = _ratios(obs, num)
    pos = num["pos"]
    e.baseline = float(err[pos])
    rb = float(ratio.max())
    wpos = tuple(int(i) for i in (ratio == ratio.max()).nonzero()[0]) if rb > 0 else pos
    cls = "precision" if r <= 2 * rb else "defect"
    return cls, (f" — {cls}: plain torch {dn} ({ctx.spec.id}/{ref}, same example): |err| = {e.baseline:.3g} at "
                 f"this element, worst {float(err[wpos]):.3g} at [{','.join(map(str, wpos))}] ({rb:.3g}× the bound); "
                 f"the target's {r:.3g}× is {'within' if cls == 'precision' else 'beyond'} 2× the baseline's")
