"""Run one property against one target and dtype under Hypothesis, and turn the outcome into a :class:`Verdict`.

Verdicts: ``passed`` / ``failed`` (the spec is violated; carries the shrunk counterexample, observed error and
bound) / ``errored`` (the target raised or hung) / ``skipped`` (could not be judged here, with the reason — never a
pass) / ``not-applicable`` (the property does not concern this target).
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import asdict, dataclass, field

import torch
from hypothesis import given, seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from ..kernels._backend import interpreter_limit
from ..spec.base import Spec
from ..spec.targets import Target
from .calling import PropertyFailure, TargetRaised, TargetTimeout, collect_dtype_findings
from .checks import Property
from .classify import CLASSES, classify_failure, worst_class
from .context import Ctx
from .profiles import Profile

STATUSES = ("passed", "failed", "errored", "skipped", "not-applicable", "crashed", "uncallable", "not-run")
# crashed: the worker process died (segfault, abort, CUDA fault); uncallable: the smoke call failed (one verdict for
# the whole target); not-run: the target hung in an earlier property.  None of them is ever a pass.
NOT_OK = ("failed", "errored", "crashed", "uncallable", "not-run")


@dataclass
class Verdict:
    prop: str
    target: str
    spec: str
    dtype: str
    status: str
    reason: str = ""
    examples: int = 0
    worst_ratio: float | None = 0.0  # largest observed error / bound over all examples run; None: none measured
    seconds: float = 0.0
    observed: float | None = None
    bound: float | None = None
    counterexample: dict | None = None  # labels of the shrunk example + its tensors (see ``example``)
    example: dict | None = field(default=None, repr=False)
    required: bool = True
    internal: bool = False  # errored inside rnnconf rather than inside the target
    # set for every non-passing judged verdict: "defect" / "precision" / "dtype-contract" (see .classify)
    failure_class: str | None = None
    baseline: float | None = None  # the naive same-precision baseline's error at the reported element
    profile_t: list | None = None  # max err/bound per time step of the failing sequence output
    findings: list = field(default_factory=list)  # [{"class", "message"}] when a verdict holds several findings

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


@contextlib.contextmanager
def _no_local_constants():
    """Hypothesis (≥ 6.131) mixes into its draws literal constants it finds in the source of every non-installed
    module in ``sys.modules`` (tests, an editable rnnconf) and caches the pool per draw type for the process
    (``hypothesis.internal.conjecture.providers``): the examples of one seed then depend on which modules the session
    happened to import before the first draw — a single test file and the whole suite drew different inputs.  Within
    a property run the local pool is empty and the cache private, so a derandomized example is a function of its
    key alone.  (A Hypothesis without that mechanism is left as it is.)"""
    try:
        from hypothesis.internal.conjecture import providers as pv
    except ImportError:  # pragma: no cover
        yield
        return
    get, cache = getattr(pv, "_get_local_constants", None), getattr(pv, "CONSTANTS_CACHE", None)
    if get is None or cache is None or not hasattr(pv, "Constants"):
        yield
        return
    empty = pv.Constants()
    pv._get_local_constants, pv.CONSTANTS_CACHE = (lambda: empty), _PRIVATE_CONSTANTS_CACHE
    try:
        yield
    finally:
        pv._get_local_constants, pv.CONSTANTS_CACHE = get, cache


_PRIVATE_CONSTANTS_CACHE: dict = {}


def example_key(spec: Spec, prop: Property, dtype: torch.dtype, profile: Profile) -> bytes:
    """What the derandomized examples depend on: (spec, property, dtype, profile) — never the target."""
    return f"{spec.id}|{prop.name}|{dtype_name(dtype)}|{profile.name}".encode()


def example_seed(key: bytes) -> int:
    """The Hypothesis seed of a derandomized profile: 128 bits of sha256(key)."""
    return int.from_bytes(hashlib.sha256(key).digest()[:16], "big")


def database_key(spec: Spec, prop: Property, target: Target, dtype: torch.dtype, profile: Profile) -> bytes:
    """Key of the persistent example database: the examples' key plus the target (a saved failure is a target's)."""
    return hashlib.sha384(example_key(spec, prop, dtype, profile) + b"|" + target.id.encode()).digest()


def run_property(prop: Property, spec: Spec, target: Target, dtype: torch.dtype, profile: Profile,
                 max_examples: int | None = None, on_example=None) -> Verdict:
    v = Verdict(prop.name, target.id, spec.id, dtype_name(dtype), "passed", required=prop.required)
    why = prop.not_applicable(spec, target)
    if why:
        v.status, v.reason = "not-applicable", why
        return v
    if dtype not in target.dtypes:
        v.status, v.reason = "not-applicable", (f"not claimed: {target.id} claims "
                                                f"{', '.join(dtype_name(d) for d in target.dtypes)}")
        return v
    why = (prop.unjudgeable and prop.unjudgeable(spec, target)) \
        or target.skip_reason(prop.name, dtype, "grad" in prop.requires) \
        or dtype_unrunnable(target, dtype, profile.device)
    if why:
        v.status, v.reason = "skipped", why
        return v
    if profile.device == "cuda" and not torch.cuda.is_available():
        v.status, v.reason = "skipped", "profile asks for CUDA but no CUDA device is available"
        return v

    state = {"last": None, "n": 0, "worst": 0.0, "measured": False, "summary": ""}
    if max_examples is None and getattr(prop, "examples", None) is not None:
        max_examples = prop.examples(profile)  # e.g. one boundary-probe sweep per example
    elif max_examples is None:
        max_examples = profile.examples_for(target, dtype)  # the suite's counts

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
        state["measured"] = state["measured"] or ctx.measured or bool(ratio)
        state["summary"] = ctx.summary or state["summary"]
        if on_example:
            on_example(state["n"])

    # the examples are a function of (spec, property, dtype, profile) only, so every library implementing a spec is
    # judged on the same inputs: a derandomized profile seeds from that key alone (not from the target, nor from the
    # source of ``inner``, which Hypothesis's derandomize would hash); the example database stays keyed per target
    # as well, so saved failures replay where they belong
    key = example_key(spec, prop, dtype, profile)
    if profile.derandomize:
        inner = seed(example_seed(key))(inner)
    inner.hypothesis.inner_test._hypothesis_internal_add_digest = key
    inner._hypothesis_internal_database_key = database_key(spec, prop, target, dtype, profile)
    t0 = time.perf_counter()
    try:
        with collect_dtype_findings() as dtype_findings, _no_local_constants():
            inner()
    except PropertyFailure as e:
        v.status, v.reason, v.observed, v.bound = "failed", str(e), e.observed, e.bound
        v.failure_class, note = classify_failure(e, prop.check, Ctx(spec, target, dtype, profile), state["last"])
        v.reason += note
        v.baseline, v.profile_t = e.baseline, e.profile_t
    except (TargetRaised, TargetTimeout) as e:
        limit = isinstance(e, TargetRaised) and interpreter_limit(e.exc)
        v.status, v.reason = ("skipped", f"{e.call}: {limit}") if limit else ("errored", str(e))
    except Flaky as e:
        v.status, v.reason = "failed", f"nondeterministic target: the same example passed and failed ({e})"
    except Exception as e:  # a defect of rnnconf itself: reported as such, never as a pass
        v.status, v.reason = "errored", f"rnnconf internal error ({type(e).__name__}: {e})"
        v.internal = True
    v.seconds = time.perf_counter() - t0
    if v.status == "passed" and state["summary"]:
        v.reason = state["summary"]  # what was run (e.g. boundary probes per dim): a passed verdict states it
    v.examples, v.worst_ratio = state["n"], (state["worst"] if state["measured"] else None)
    _add_dtype_findings(v, dtype_findings)
    if v.status in NOT_OK and v.failure_class is None:
        v.failure_class = "defect"  # raised, hung, nondeterministic, crashed: structural
    if v.status in ("failed", "errored") and state["last"] is not None:
        v.example = state["last"]
        v.counterexample = describe_example(state["last"])
    return v


def _add_dtype_findings(v: Verdict, found: dict) -> None:
    """A wrong output/state dtype is a dtype-contract finding beside the numeric verdict, which was judged on the
    output cast to the contract's dtype: both show, and the class is the more severe (see .classify)."""
    if not found:
        return
    msgs = [{"class": "dtype-contract", "message": m} for m in found.values()]
    if v.status == "passed":
        v.status, v.failure_class = "failed", "dtype-contract"
        v.reason = "; ".join(m["message"] for m in msgs) + " (values judged on the cast output: within the bound)"
        v.findings = msgs
    elif v.status in NOT_OK:
        v.findings = msgs + [{"class": v.failure_class or "defect", "message": v.reason}]
        v.failure_class = worst_class([v.failure_class or "defect", "dtype-contract"])
        v.reason = "; ".join(m["message"] for m in msgs) + "; and " + v.reason


def exit_code(verdicts, fail_on=frozenset(CLASSES)) -> int:
    """1 if any required verdict is not ok with a class in ``fail_on`` (a non-passing verdict without a class
    counts as a defect; skipped is not a failure here — the badge keeps it grey), else 0."""
    fail_on = frozenset(fail_on or CLASSES)
    for v in verdicts:
        get = v.get if isinstance(v, dict) else lambda k, d=None: getattr(v, k, d)
        if get("required", True) and get("status") in NOT_OK and (get("failure_class") or "defect") in fail_on:
            return 1
    return 0


def replay(prop: Property, spec: Spec, target: Target, dtype: torch.dtype, profile: Profile, example: dict) -> float:
    """Re-run ``prop.check`` on a saved example (reproducers use this); raises as the property would."""
    return prop.check(Ctx(spec, target, dtype, profile, None), example)
