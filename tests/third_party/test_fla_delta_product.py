"""flash-linear-attention's ``chunk_gated_delta_product`` against rnnconf's ``delta-product`` spec through the
adapter ``fla:chunk_gated_delta_product`` (:mod:`rnnconf.adapters.fla`): every applicable property per dtype, the
interleaved-length contract (k, v, beta of length T·n_h), and — natively — sequences past fla's 64-sub-step chunk.

Under the Triton interpreter the kernel cannot run: every property is skipped with the interpreter's exception
text (recorded precisely below), never passed.  fla refuses float32 (asserted), so the adapter declares none.
"""
import warnings

import pytest
import torch

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Triton is not supported on current platform")
    pytest.importorskip("fla", reason="flash-linear-attention (fla-core) is not installed")

from rnnconf.adapters import get_adapter  # noqa: E402
from rnnconf.kernels._backend import interpreter_active, kernel_device  # noqa: E402
from rnnconf.oracles import get_oracle  # noqa: E402
from rnnconf.oracles.delta import form_cond  # noqa: E402
from rnnconf.properties import PROPERTIES, get_profile, properties_for, run_property  # noqa: E402
from rnnconf.registry import get_spec  # noqa: E402
from rnnconf.spec.delta import DELTA_ERROR  # noqa: E402

pytestmark = [pytest.mark.fla, pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

GDP = "fla:chunk_gated_delta_product"
_T = {}


def _target():
    if GDP not in _T:
        _T[GDP] = get_adapter(GDP)
    return _T[GDP]


def _items():
    target = _target()
    spec = get_spec(target.spec_id)
    for prop in properties_for(spec, target):
        if prop.not_applicable(spec, target):
            continue
        for dt in (target.dtypes if prop.all_dtypes else (torch.float16,)):
            yield pytest.param(prop.name, dt, id=f"{GDP}-{prop.name}-{str(dt).replace('torch.', '')}")


@pytest.mark.parametrize("prop_name,dtype", list(_items()))
def test_fla_delta_product_property(prop_name, dtype):
    target = _target()
    v = run_property(PROPERTIES[prop_name], get_spec(target.spec_id), target, dtype, get_profile())
    if v.status == "skipped":
        assert "backend" in v.reason or "interpreter" in v.reason, v.reason
        pytest.skip(v.reason)
    assert v.status == "passed", f"{v.status}: {v.reason}\ncounterexample: {v.counterexample}"
    assert v.examples > 0


def _inputs(T, n_h, dtype, seed=0, B=1, H=2, K=16, V=8):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(B, T * n_h, H, K, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(B, T * n_h, H, V, generator=gen, dtype=torch.float64)
    beta = 2 * torch.rand(B, T * n_h, H, generator=gen, dtype=torch.float64)
    g = -0.3 * torch.rand(B, T, H, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, H, K, V, generator=gen, dtype=torch.float64)
    return tuple(x.to(dtype) for x in (q, k, v, g, beta, h0))


def test_interpreter_skip_is_precise():
    """The adapter's probe records, per dtype, the interpreter's exception (float64: a downcast rounding error,
    float16: ``.to`` on a Python int); natively none."""
    target = _target()
    if not interpreter_active():
        assert target.skips == ()
        return
    by_dtype = {sk.dtype: sk for sk in target.skips}
    assert set(by_dtype) == {torch.float64, torch.float16}, target.skips
    assert all(sk.prop == "*" and "interpreter" in sk.reason for sk in target.skips)
    assert "fp_downcast_rounding should be set only for truncating fp conversions" in by_dtype[torch.float64].reason
    assert "'int' object has no attribute 'to'" in by_dtype[torch.float16].reason


@pytest.mark.skipif(not interpreter_active(), reason="what the interpreter cannot run")
def test_half_precision_interpreter_error():
    """At float16 (autotune pinned by the adapter) the kernel stops where fla's other chunk kernels do:
    ``.to(tl.int64)`` on a ``range`` variable, a Python int under the interpreter."""
    from triton.runtime.errors import InterpreterError

    q, k, v, g, beta, _ = _inputs(5, 2, torch.float16)
    with pytest.raises(InterpreterError, match="'int' object has no attribute 'to'"):
        _target().fn(q, k, v, g, beta, 2, output_final_state=True)


def test_refuses_float32_and_checks_lengths():
    """fla asserts ``q.dtype != torch.float32`` and k of length T·num_householder (before any kernel runs)."""
    assert torch.float32 not in _target().dtypes
    q, k, v, g, beta, _ = _inputs(3, 2, torch.float32)
    with pytest.raises(AssertionError, match="does not support float32"):
        _target().fn(q, k, v, g, beta, 2)
    q, k, v, g, beta, _ = _inputs(3, 2, torch.float16)
    with pytest.raises(AssertionError):
        _target().fn(q, k, v, g, beta, 3)


@pytest.mark.skipif(interpreter_active(), reason="chunk_gated_delta_product cannot run under the Triton interpreter "
                    "(test_half_precision_interpreter_error records why)")
@pytest.mark.parametrize("n_h", [1, 2, 3])
@pytest.mark.parametrize("T", [21, 22, 64, 65])
def test_long_sequences_against_oracle(T, n_h):
    """T·n_h around fla's 64-sub-step chunk, β over [0, 2], an initial state; o judged against the mpmath oracle
    under the adapter's traits (float16)."""
    q, k, v, g, beta, h0 = _inputs(T, n_h, torch.float16)
    dev = kernel_device()
    o, _ = _target().fn(*(x.to(dev) for x in (q, k, v, g, beta)), n_h, initial_state=h0.to(dev),
                        output_final_state=True)
    o = o.cpu()
    res = form_cond(get_oracle("delta-product")(*(x.double() for x in (q, k, v, g, beta)), n_h,
                                                initial_state=h0.double()), _target().traits)
    bound = DELTA_ERROR.bound(res.steps["o"], res.mag["o"], res.logmass["o"], torch.float16, _target().traits,
                              cond=res.cond["o"])
    ratio = float(((o.double() - res.values["o"]).abs() / bound).max())
    assert ratio <= 1.0, f"{ratio:.3g}x the bound"


def test_adapter_registry():
    from rnnconf.adapters import list_adapters

    listed = {a["name"]: a for a in list_adapters()}
    assert listed[GDP]["available"] and listed[GDP]["spec"] == "delta-product"
    t = _target()
    assert (t.kind, t.spec_id) == ("triton", "delta-product")
    assert (t.traits.cumsum, t.traits.chunk_size) == ("chunk", 64)
