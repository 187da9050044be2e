"""Run one property against one target and dtype under Hypothesis, and turn the outcome into a :class:`Verdict`.

Verdicts: ``passed`` / ``failed`` (the spec is violated; carries the shrunk counterexample, observed error and
bound) / ``errored`` (the target raised or hung) / ``skipped`` (could not be judged here, with the reason — never a
pass) / ``not-applicable`` (the property does not concern this target).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from ..spec.base import Spec
from ..spec.targets import Target
from .calling import PropertyFailure, TargetRaised, TargetTimeout
from .checks import Property
from .context import Ctx
from .profiles import Profile

STATUSES = ("passed", "failed", "errored", "skipped", "not-applicable")


@dataclass
class Verdict:
    prop: str
    target: str
    spec: str
    dtype: str
    status: str
    reason: str = ""
    examples: int = 0
    worst_ratio: float = 0.0  # largest observed error / bound over all examples run
    seconds: float = 0.0
    observed: float | None = None
    bound: float | None = None
    counterexample: dict | None = None  # labels of the shrunk example + its tensors (see ``example``)
    example: dict | None = field(default=None, repr=False)
    required: bool = True
    internal: bool = False  # errored inside rnnconf rather than inside the target

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "not-applicable")

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("example", None)
        return d


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def primary_dtype(target: Target) -> torch.dtype:
    return torch.float32 if torch.float32 in target.dtypes else target.dtypes[0]


def dtype_unrunnable(target: Target, dtype: torch.dtype, device: str) -> str | None:
    """Why ``dtype`` cannot be judged for this target here (a backend limitation, not the target's fault)."""
    if target.kind == "triton":
        from ..kernels._backend import dtype_runnable

        ok, why = dtype_runnable(dtype)
        if not ok:
            return why
    return None


def describe_example(ex: dict) -> dict:
    """JSON-friendly summary of a drawn example: sizes, scalars, and per-tensor shape/min/max."""
    out = {}
    for k, v in ex.items():
        if isinstance(v, torch.Tensor):
            out[k] = _tensor_summary(v)
        elif isinstance(v, dict):
            out[k] = describe_example(v)
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], (tuple, list)):
            out[k] = [describe_example(dict(enumerate(p))) for p in v]
        else:
            out[k] = v if isinstance(v, (int, float, str, bool, list, type(None))) else repr(v)
    return out


def _tensor_summary(v: torch.Tensor) -> dict:
    if v.numel() == 0:
        return {"shape": list(v.shape)}
    r = v.abs() if v.is_complex() else v
    return {"shape": list(v.shape), "min": float(r.min()), "max": float(r.max())}


def run_property(prop: Property, spec: Spec, target: Target, dtype: torch.dtype, profile: Profile,
                 max_examples: int | None = None, on_example=None) -> Verdict:
    v = Verdict(prop.name, target.id, spec.id, dtype_name(dtype), "passed", required=prop.required)
    why = prop.not_applicable(spec, target)
    if why:
        v.status, v.reason = "not-applicable", why
        return v
    if dtype not in target.dtypes:
        v.status, v.reason = "not-applicable", f"target does not accept {dtype_name(dtype)}"
        return v
    why = (prop.unjudgeable and prop.unjudgeable(spec, target)) or target.skip_reason(prop.name, dtype) \
        or dtype_unrunnable(target, dtype, profile.device)
    if why:
        v.status, v.reason = "skipped", why
        return v
    if profile.device == "cuda" and not torch.cuda.is_available():
        v.status, v.reason = "skipped", "profile asks for CUDA but no CUDA device is available"
        return v

    state = {"last": None, "n": 0, "worst": 0.0}

    @profile.settings(max_examples=max_examples)
    @given(st.data())
    def inner(data):
        ctx = Ctx(spec, target, dtype, profile, data)
        ex = prop.draw(ctx)
        state["last"] = ex
        ctx.data = None
        ratio = prop.check(ctx, ex)
        state["n"] += 1
        state["worst"] = max(state["worst"], ratio or 0.0, ctx.worst)
        if on_example:
            on_example(state["n"])

    # one example-database key per (property, target, dtype): saved failures replay where they belong
    inner.hypothesis.inner_test._hypothesis_internal_add_digest = f"{prop.name}|{target.id}|{dtype}".encode()
    t0 = time.perf_counter()
    try:
        inner()
    except PropertyFailure as e:
        v.status, v.reason, v.observed, v.bound = "failed", str(e), e.observed, e.bound
    except (TargetRaised, TargetTimeout) as e:
        v.status, v.reason = "errored", str(e)
    except Flaky as e:
        v.status, v.reason = "failed", f"nondeterministic target: the same example passed and failed ({e})"
    except Exception as e:  # a defect of rnnconf itself: reported as such, never as a pass
        v.status, v.reason = "errored", f"rnnconf internal error ({type(e).__name__}: {e})"
        v.internal = True
    v.seconds = time.perf_counter() - t0
    v.examples, v.worst_ratio = state["n"], state["worst"]
    if v.status in ("failed", "errored") and state["last"] is not None:
        v.example = state["last"]
        v.counterexample = describe_example(state["last"])
    return v


def replay(prop: Property, spec: Spec, target: Target, dtype: torch.dtype, profile: Profile, example: dict) -> float:
    """Re-run ``prop.check`` on a saved example (reproducers use this); raises as the property would."""
    return prop.check(Ctx(spec, target, dtype, profile, None), example)
