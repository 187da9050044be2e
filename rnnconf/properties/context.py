"""The per-example context a property runs in: spec, target, dtype, profile, drawing, calling, and judging.

Judging always means: against the mpmath oracle, within the spec's error-model bound for this dtype and the target's
declared traits.  Failure messages say what was expected, what came back, by how much, and for which call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ..oracles import DEFAULT_DPS, get_oracle
from ..spec.base import Spec
from ..spec.errors import unit_roundoff
from ..spec.targets import Target
from . import strategies as S
from .calling import Call, PropertyFailure, call_target
from .profiles import Profile


@dataclass
class Ctx:
    spec: Spec
    target: Target
    dtype: torch.dtype
    profile: Profile
    data: object = None  # hypothesis `data` while drawing; None while replaying a saved example
    worst: float = 0.0  # largest observed error / bound seen in this example
    worst_err: float = 0.0  # |err| and bound at the element of that worst ratio
    worst_bound: float = 0.0
    capture: str | None = None  # re-running for the baseline (see .classify): the label whose observed is wanted
    measured: bool = False  # whether any error was measured against a bound (a structural check measures none)
    notes: list = field(default_factory=list)
    summary: str = ""  # what a passing example ran, stated on the verdict (boundary probes: probes per dim)

    # ---- drawing -------------------------------------------------------------------------------------------
    def draw(self, strategy, label: str):
        return self.data.draw(strategy, label=label)

    def domain(self, arg_name: str):
        return self.target.domain_overrides.get(arg_name) or self.spec.arg(arg_name).domain

    def draw_inputs(self, dims: dict, with_state: bool | None = None, prefix: str = "") -> dict:
        """Draw every input for ``dims``; the initial state when the target takes one (drawn present or absent
        unless ``with_state`` forces it)."""
        from hypothesis import strategies as st

        dims = self.fit_dims(dims)
        ex = {"dims": dict(dims), "inputs": {}, "initial_state": None}
        unit = self.spec.extra.get("unit_rows", ())
        for a in self.spec.inputs:
            ex["inputs"][a.name] = S.draw_tensor(self.data, prefix + a.name, self.domain(a.name),
                                                 S.shape_of(a.shape, dims), self.dtype)
            if a.name in unit:  # the spec draws this argument L2-normalised along its last axis
                v = ex["inputs"][a.name]
                spread = self.draw(st.sampled_from([0.0, 1e-3, 1e-6]), prefix + a.name + ".collinear") \
                    if v.dim() >= 2 and v.shape[1] > 1 else 0.0
                if spread:  # near-collinear rows: one direction plus a small perturbation (ill-conditioned WY)
                    v = v[:, :1] + spread * v
                ex["inputs"][a.name] = S.unit_rows(v, self.dtype)
        ex["inputs"].update(self.spec.static_values(dims))
        st_arg = self.spec.state_arg
        if st_arg is not None and "initial_state" in self.target.supports:
            use = with_state if with_state is not None else self.draw(st.booleans(), prefix + "initial_state")
            if use:
                ex["initial_state"] = self.draw_state(st_arg, dims, prefix)
        return ex

    def fit_dims(self, dims: dict) -> dict:
        """``dims`` with each size the target's :class:`~rnnconf.spec.targets.DimRule` narrows fitted to it."""
        rules = self.target.dim_rules
        return {k: (rules[k].fit(v, self.spec.dims[k].lo, self.spec.dims[k].hi) if k in rules else v)
                for k, v in dims.items()}

    def draw_state(self, st_arg, dims, prefix=""):
        shape = S.shape_of(st_arg.shape, dims)
        dom = self.domain(st_arg.name)
        if self.spec.extra.get("state_dtype") == "complex":
            re = S.draw_tensor(self.data, prefix + "initial_state.re", dom, shape, self.dtype)
            im = S.draw_tensor(self.data, prefix + "initial_state.im", dom, shape, self.dtype)
            return torch.complex(re, im)
        slots = self.spec.extra.get("state_slots")
        if slots and st_arg.name not in self.target.domain_overrides:  # one domain per state slot (along S)
            parts = [S.draw_tensor(self.data, f"{prefix}initial_state[{k}]", d, shape[1:], self.dtype)
                     for k, d in enumerate(slots)]
            return self.spec.extra["fix_state"](torch.stack(parts))
        return S.draw_tensor(self.data, prefix + "initial_state", dom, shape, self.dtype)

    def draw_dims(self, fixed=None, bounds=None) -> dict:
        return S.draw_dims(self.data, self.spec, self.profile, fixed, bounds)

    # ---- calling and the oracle ------------------------------------------------------------------------------
    @property
    def final_state(self) -> bool:
        return "final_state" in self.target.supports and self.spec.has_state

    def call(self, inputs: dict, initial_state=None, **kw) -> Call:
        kw.setdefault("output_final_state", self.final_state)
        return call_target(self.spec, self.target, inputs, self.dtype, self.profile.device,
                           initial_state=initial_state, **kw)

    def oracle(self, inputs: dict, initial_state=None):
        return get_oracle(self.spec.id)(**inputs, initial_state=initial_state, dps=DEFAULT_DPS)

    # ---- judging ---------------------------------------------------------------------------------------------
    def bound(self, res, name: str, extra_steps: float = 0.0) -> torch.Tensor:
        em = self.spec.error_model
        if "form_adjust" in res.aux:  # ingredients that depend on how the form evaluates (chunk conditioning,
            res = res.aux["form_adjust"](res, self.target.traits, self.dtype)  # ACP's decision rounding)
        lm = res.logmass.get(name)
        uf = res.aux.get("underflow", {}).get(name)  # a spec's cofactor-weighted rounding count (floor)
        b = em.bound(res.steps[name] + extra_steps, res.mag[name], lm, self.dtype, self.target.traits,
                     res.logvalue.get(name), res.cond.get(name),
                     underflow=None if uf is None else uf + extra_steps)
        carry = res.carry.get(name)
        if extra_steps and carry is not None:  # the carried state's rounding, propagated by the oracle's Jacobians
            u_out = unit_roundoff(self.dtype)
            b = b + extra_steps * u_out * carry * (1 + u_out)
        slack = res.slack.get(name)  # a deviation the spec itself permits (ACP: pruned weight < ε)
        return b if slack is None else b + slack

    def expect_close(self, what: str, observed: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor,
                     call_desc: str, source: str | None = None, against_oracle: bool = True) -> float:
        """Elementwise |observed − expected| ≤ bound; returns the worst ratio, raises PropertyFailure otherwise.

        Elements whose exact value is not representable in the dtype (|expected| > finfo.max) are not judged.
        ``against_oracle=False``: ``expected`` is not an exact value (e.g. the target against itself), so a failure
        is structural (a ``defect``) and has no same-precision baseline."""
        if self.capture is not None:  # re-run of the reference form for the baseline: hand over, judge nothing
            if what == self.capture:
                raise Captured(observed)
            return 0.0
        if observed.shape != expected.shape:
            raise PropertyFailure(f"{what}: shape {tuple(observed.shape)} but expected {tuple(expected.shape)} "
                                  f"[{call_desc}]")
        if observed.numel() == 0:
            return 0.0
        if torch.isnan(bound).any():  # a bound that cannot be compared would pass everything: rnnconf's defect
            raise RuntimeError(f"{what}: the error model's bound is NaN at {_index(torch.isnan(bound).nonzero()[0])} "
                               f"[{call_desc}]")
        fmax = torch.finfo(self.dtype).max
        # an exact value within its error bound of the largest finite number may round to ±inf: not judged then
        judged = expected.abs() + bound < fmax
        bad_nan = judged & ~torch.isfinite(observed)
        if bad_nan.any():
            idx = _index(bad_nan.nonzero()[0])
            raise PropertyFailure(f"{what}{idx}: got {observed[tuple(bad_nan.nonzero()[0])].item()} where the "
                                  f"oracle gives {expected[tuple(bad_nan.nonzero()[0])].item():.6g} "
                                  f"({int(bad_nan.sum())} non-finite elements) [{call_desc}]",
                                  observed=float("inf"), bound=0.0)
        err = (observed - expected).abs()
        self.measured = True
        err = torch.where(judged, err, torch.zeros_like(err))
        ratio = err / bound
        ratio = torch.where(err == 0, torch.zeros_like(ratio), ratio)
        worst = float(ratio.max())
        pos = tuple(int(i) for i in (ratio == ratio.max()).nonzero()[0])
        if worst >= self.worst:
            self.worst, self.worst_err, self.worst_bound = worst, float(err[pos]), float(bound[pos])
        if worst > 1.0:
            numeric = None if not against_oracle else {
                "what": what, "observed": observed, "expected": expected, "bound": bound, "judged": judged,
                "pos": pos, "ratio": worst, "dtype": self.dtype}
            raise PropertyFailure(
                f"{what}{_index(pos)}: expected {_fmt(expected[pos])} ({source or _ORACLE}), got "
                f"{_fmt(observed[pos])}; |err| = {float(err[pos]):.3g} > bound {float(bound[pos]):.3g} "
                f"({worst:.3g}× the bound; {str(self.dtype).replace('torch.', '')}, "
                f"{self.target.traits.describe()}; {int((ratio > 1).sum())} of {ratio.numel()} elements out) "
                f"[{call_desc}]", observed=float(err[pos]), bound=float(bound[pos]), numeric=numeric,
                profile_t=self._profile_t(what, ratio))
        return worst

    def _profile_t(self, what: str, ratio: torch.Tensor) -> list[float] | None:
        """max err/bound per time step, when ``what`` names a sequence output (or the gradient of a sequence input)
        whose full time axis is in ``ratio``."""
        m = re.match(r"(?:\([^)]*\) )?([A-Za-z_]\w*)", what)
        if m is None:
            return None
        shapes = {o.name: o.shape for o in self.spec.outputs}
        shapes.update({f"d{a.name}": a.shape for a in self.spec.inputs if m.group(1) not in shapes})
        shape = shapes.get(m.group(1))
        if shape is None or "T" not in shape or len(shape) != ratio.dim():
            return None
        ax = list(shape).index("T")
        return [float(r) for r in ratio.movedim(ax, 0).reshape(ratio.shape[ax], -1).amax(1)]

    def expect_finite(self, call: Call, inputs: dict, initial_state=None, res=None, what: str = "") -> None:
        """Non-finite is never a pass: every output of ``call`` must be finite wherever the oracle's exact value is
        finite and more than its error bound inside ±finfo.max (the rule of :meth:`expect_close`).  For properties
        that compare a target with itself (bitwise, where NaN equals NaN) or judge only part of what it returned.

        Cheap: the oracle (``res``: a result or a function returning one; by default evaluated on
        ``inputs``/``initial_state``) is consulted only when some element is non-finite.  Raises PropertyFailure
        naming the element, the oracle's value and the call."""
        if self.capture is not None:
            return
        bad = {n: ~torch.isfinite(v) for n, v in call.outputs.items()}
        if not any(bool(m.any()) for m in bad.values()):
            return
        res = self.oracle(inputs, initial_state) if res is None else res() if callable(res) else res
        fmax = torch.finfo(self.dtype).max
        for name, mask in bad.items():
            expected = res.values.get(name)
            if not bool(mask.any()) or expected is None or expected.shape != mask.shape:
                continue
            hit = mask & torch.isfinite(expected) & (expected.abs() + self.bound(res, name) < fmax)
            if bool(hit.any()):
                pos = tuple(int(i) for i in hit.nonzero()[0])
                raise PropertyFailure(f"{what}{name}{_index(pos)}: got {_fmt(call.outputs[name][pos])} where the "
                                      f"oracle gives {_fmt(expected[pos])} ({int(hit.sum())} of {hit.numel()} "
                                      f"elements non-finite where the oracle is finite) [{call.desc}]",
                                      observed=float("inf"), bound=0.0)

    def expect_unchanged(self, what: str, new: torch.Tensor, old: torch.Tensor, call_desc: str, exact=None) -> None:
        """Bitwise equal — or, for a target whose work depends on the whole call (``traits.adaptive``), both within
        the bound of the exact value: ``exact()`` returns (value, bound) shaped like ``new``."""
        if not self.target.traits.adaptive or exact is None:
            return self.expect_equal(what, new, old, call_desc)
        val, b = exact()
        self.expect_close(f"{what} (adaptive target; the first call)", old, val, b, call_desc)
        self.expect_close(f"{what} (adaptive target)", new, val, b, call_desc)

    def expect_equal(self, what: str, a: torch.Tensor, b: torch.Tensor, call_desc: str) -> None:
        """Bitwise equality (NaN equal to NaN)."""
        if self.capture is not None:
            return
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        if a.shape != b.shape or not bool(same.all()):
            if a.shape != b.shape:
                raise PropertyFailure(f"{what}: shapes differ {tuple(a.shape)} vs {tuple(b.shape)} [{call_desc}]")
            pos = tuple(int(i) for i in (~same).nonzero()[0])
            raise PropertyFailure(f"{what}{_index(pos)}: {_fmt(a[pos])} vs {_fmt(b[pos])} — expected bitwise "
                                  f"equal ({int((~same).sum())} elements differ) [{call_desc}]")


_ORACLE = f"oracle, {DEFAULT_DPS} digits"


class Captured(Exception):
    """Raised by :meth:`Ctx.expect_close` in capture mode with the observed tensor of the captured label."""

    def __init__(self, observed: torch.Tensor):
        super().__init__("captured")
        self.observed = observed


def _index(pos) -> str:
    return "[" + ",".join(str(int(p)) for p in pos) + "]"


def _fmt(v) -> str:
    v = v.item() if isinstance(v, torch.Tensor) else v
    return f"{v:.9g}" if isinstance(v, float) else str(v)
