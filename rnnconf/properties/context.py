"""The per-example context a property runs in: spec, target, dtype, profile, drawing, calling, and judging.

Judging always means: against the mpmath oracle, within the spec's error-model bound for this dtype and the target's
declared traits.  Failure messages say what was expected, what came back, by how much, and for which call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..oracles import DEFAULT_DPS, get_oracle
from ..spec.base import Spec
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
    notes: list = field(default_factory=list)

    # ---- drawing -------------------------------------------------------------------------------------------
    def draw(self, strategy, label: str):
        return self.data.draw(strategy, label=label)

    def domain(self, arg_name: str):
        return self.target.domain_overrides.get(arg_name) or self.spec.arg(arg_name).domain

    def draw_inputs(self, dims: dict, with_state: bool | None = None, prefix: str = "") -> dict:
        """Draw every input for ``dims``; the initial state when the target takes one (drawn present or absent
        unless ``with_state`` forces it)."""
        from hypothesis import strategies as st

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

    def draw_state(self, st_arg, dims, prefix=""):
        shape = S.shape_of(st_arg.shape, dims)
        dom = self.domain(st_arg.name)
        if self.spec.extra.get("state_dtype") == "complex":
            re = S.draw_tensor(self.data, prefix + "initial_state.re", dom, shape, self.dtype)
            im = S.draw_tensor(self.data, prefix + "initial_state.im", dom, shape, self.dtype)
            return torch.complex(re, im)
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
        b = em.bound(res.steps[name] + extra_steps, res.mag[name], lm, self.dtype, self.target.traits,
                     res.logvalue.get(name), res.cond.get(name))
        slack = res.slack.get(name)  # a deviation the spec itself permits (ACP: pruned weight < ε)
        return b if slack is None else b + slack

    def expect_close(self, what: str, observed: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor,
                     call_desc: str, source: str | None = None) -> float:
        """Elementwise |observed − expected| ≤ bound; returns the worst ratio, raises PropertyFailure otherwise.

        Elements whose exact value is not representable in the dtype (|expected| > finfo.max) are not judged."""
        if observed.shape != expected.shape:
            raise PropertyFailure(f"{what}: shape {tuple(observed.shape)} but expected {tuple(expected.shape)} "
                                  f"[{call_desc}]")
        if observed.numel() == 0:
            return 0.0
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
        err = torch.where(judged, err, torch.zeros_like(err))
        ratio = err / bound
        ratio = torch.where(err == 0, torch.zeros_like(ratio), ratio)
        worst = float(ratio.max())
        self.worst = max(self.worst, worst)
        if worst > 1.0:
            pos = tuple(int(i) for i in (ratio == ratio.max()).nonzero()[0])
            raise PropertyFailure(
                f"{what}{_index(pos)}: expected {_fmt(expected[pos])} ({source or _ORACLE}), got "
                f"{_fmt(observed[pos])}; |err| = {float(err[pos]):.3g} > bound {float(bound[pos]):.3g} "
                f"({worst:.3g}× the bound; {str(self.dtype).replace('torch.', '')}, "
                f"{self.target.traits.describe()}; {int((ratio > 1).sum())} of {ratio.numel()} elements out) "
                f"[{call_desc}]", observed=float(err[pos]), bound=float(bound[pos]))
        return worst

    def expect_equal(self, what: str, a: torch.Tensor, b: torch.Tensor, call_desc: str) -> None:
        """Bitwise equality (NaN equal to NaN)."""
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        if a.shape != b.shape or not bool(same.all()):
            if a.shape != b.shape:
                raise PropertyFailure(f"{what}: shapes differ {tuple(a.shape)} vs {tuple(b.shape)} [{call_desc}]")
            pos = tuple(int(i) for i in (~same).nonzero()[0])
            raise PropertyFailure(f"{what}{_index(pos)}: {_fmt(a[pos])} vs {_fmt(b[pos])} — expected bitwise "
                                  f"equal ({int((~same).sum())} elements differ) [{call_desc}]")


_ORACLE = f"oracle, {DEFAULT_DPS} digits"


def _index(pos) -> str:
    return "[" + ",".join(str(int(p)) for p in pos) + "]"


def _fmt(v) -> str:
    v = v.item() if isinstance(v, torch.Tensor) else v
    return f"{v:.9g}" if isinstance(v, float) else str(v)
