"""Failure classes (rnnconf.properties.classify): every non-passing verdict is a ``defect``, a ``precision`` finding
(beyond the bound, within 2× the naive same-precision baseline) or a ``dtype-contract`` finding.

The precision / defect pair uses a test-only property that judges the oracle against a third of the derived bound:
a conforming form must fail it (the classifier needs a failure to classify) while its same-precision baseline, the
reference form, errs as much — the situation of fla's float16 hgrn gradient — and a clearly wrong form must not be
excused by it.
"""
import dataclasses

import pytest
import torch

from rnnconf.impls import hgrn as hgrn_impls
from rnnconf.properties import PROPERTIES
from rnnconf.properties.checks import Property
from rnnconf.properties.classify import worst_class
from rnnconf.properties.profiles import get_profile
from rnnconf.properties.runner import Verdict, exit_code, run_property
from rnnconf.registry import get_form
from rnnconf.spec import get_spec

SPEC = get_spec("hgrn")
SEQ = get_form("hgrn/sequential")
PROFILE = get_profile("ci")


def _planted(name, fn, **kw):
    return dataclasses.replace(SEQ, name=f"planted-{name}", fn=fn, doc=f"test target ({name})", **kw)


def _reassociated(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Right dtype, equally naive, different order: the Hillis–Steele scan instead of the loop."""
    return hgrn_impls.scan(x, g, initial_state, output_final_state, cu_seqlens)


def _wrong_gate(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    return hgrn_impls.sequential(x, 1.05 * g, initial_state, output_final_state, cu_seqlens)


def _float32_inside(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Accepts float64 and silently computes in float32."""
    h0 = None if initial_state is None else initial_state.float()
    o, h = hgrn_impls.sequential(x.float(), g.float(), h0, output_final_state, cu_seqlens)
    return o.to(x.dtype), (None if h is None else h.to(x.dtype))


def _float32_out(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Right values, wrong dtype: returns float32 for half inputs."""
    o, h = hgrn_impls.sequential(x, g, initial_state, output_final_state, cu_seqlens)
    return o.float(), (None if h is None else h.float())


def _float32_out_wrong(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    o, h = _wrong_gate(x, g, initial_state, output_final_state, cu_seqlens)
    return o.float(), (None if h is None else h.float())


def _tight_oracle():
    oracle = PROPERTIES["oracle"]

    def check(ctx, ex):
        call = ctx.call(ex["inputs"], ex["initial_state"])
        res = ctx.oracle(ex["inputs"], ex["initial_state"])
        return ctx.expect_close("o", call.outputs["o"], res.values["o"], ctx.bound(res, "o") / 3, call.desc)

    return Property("tight-oracle", "test only: the oracle within a third of the bound", oracle.draw, check)


def _run(prop, target, dtype, n=4):
    return run_property(prop, SPEC, target, dtype, PROFILE, max_examples=n)


def test_reordered_naive_form_is_precision():
    v = _run(_tight_oracle(), _planted("reassociated", _reassociated), torch.float16)
    assert v.status == "failed", v.reason
    assert v.failure_class == "precision", v.reason
    assert "plain torch float16 (hgrn/sequential, same example)" in v.reason
    assert v.baseline is not None and v.baseline >= 0
    assert v.profile_t and max(v.profile_t) > 1 and len(v.profile_t) == v.counterexample["dims"]["T"]


def test_wrong_form_is_defect():
    v = _run(_tight_oracle(), _planted("wrong-gate", _wrong_gate), torch.float16)
    assert v.status == "failed" and v.failure_class == "defect", v.reason
    assert "beyond 2× the baseline's" in v.reason


def test_wrong_form_at_float32_is_defect_not_lower_precision():
    v = _run(PROPERTIES["oracle"], _planted("wrong-gate", _wrong_gate), torch.float32)
    assert v.status == "failed" and v.failure_class == "defect", v.reason


def test_float64_computed_in_float32_is_dtype_contract():
    v = _run(PROPERTIES["oracle"], _planted("float32-inside", _float32_inside), torch.float64)
    assert v.status == "failed" and v.failure_class == "dtype-contract", v.reason
    assert "computed at about float32 precision" in v.reason


def test_wrong_output_dtype_is_dtype_contract_and_values_still_judged():
    v = _run(PROPERTIES["oracle"], _planted("float32-out", _float32_out), torch.float16)
    assert v.status == "failed" and v.failure_class == "dtype-contract", v.reason
    assert v.examples == 4  # the numeric verdict was judged on every example, on the cast output
    assert [f["class"] for f in v.findings] and all(f["class"] == "dtype-contract" for f in v.findings)
    assert "o.dtype=torch.float32, but should be torch.float16" in v.reason


def test_wrong_output_dtype_and_wrong_values_is_defect_with_both_findings():
    v = _run(PROPERTIES["oracle"], _planted("float32-out-wrong", _float32_out_wrong), torch.float16)
    assert v.status == "failed" and v.failure_class == "defect", v.reason
    assert {f["class"] for f in v.findings} == {"dtype-contract", "defect"}


def test_structural_failure_is_defect():
    def leak(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        o, h = hgrn_impls.sequential(x, g, initial_state, output_final_state, cu_seqlens)
        return o + 0 * x.roll(-1, 1) + (x.roll(-1, 1) * 1e-3), h  # o_t sees x_{t+1}

    v = _run(PROPERTIES["causality-perturb"], _planted("future-leak", leak), torch.float32)
    assert v.status == "failed" and v.failure_class == "defect" and v.baseline is None, v.reason


@pytest.mark.parametrize("cls,fail_on,code", [
    ("precision", None, 1), ("precision", {"defect", "dtype-contract"}, 0), ("defect", {"defect"}, 1),
    (None, {"defect"}, 1), ("dtype-contract", {"precision"}, 0)])
def test_exit_code(cls, fail_on, code):
    ok = Verdict("oracle", "t", "hgrn", "float32", "passed")
    bad = Verdict("oracle", "t", "hgrn", "float16", "failed", failure_class=cls)
    optional = Verdict("x", "t", "hgrn", "float16", "failed", failure_class="defect", required=False)
    args = () if fail_on is None else (frozenset(fail_on),)
    assert exit_code([ok, bad, optional], *args) == code
    assert exit_code([ok, optional, Verdict("y", "t", "hgrn", "float32", "skipped")], *args) == 0
    assert exit_code([dict(bad.to_json())], *args) == code


def test_precedence():
    assert worst_class(["precision", "dtype-contract"]) == "dtype-contract"
    assert worst_class(["dtype-contract", "defect", None]) == "defect"
    assert worst_class([None]) is None
