"""Smoke tests of the Triton kernels against float64 torch references (the property suite does the thorough job).

Every comparison is elementwise against a bound derived from the error-model shape of :mod:`rnnconf.spec.errors`:
``u · 8 · (T + 1) · magnitude (+ output rounding and an underflow floor)``, where the magnitude is the diagonal
family's magnitude shadow (outputs) or gradient magnitude (:mod:`rnnconf.spec.diagonal`).
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rnnconf.impls.hgrn import sequential as hgrn_sequential  # noqa: E402
from rnnconf.kernels import hgrn as khgrn  # noqa: E402
from rnnconf.kernels import mingru as kmin  # noqa: E402
from rnnconf.kernels._backend import dtype_runnable, kernel_device  # noqa: E402
from rnnconf.spec.diagonal import grad_magnitudes, shadows  # noqa: E402
from rnnconf.spec.errors import tiny, unit_roundoff  # noqa: E402
from rnnconf.spec.targets import _FORMS  # noqa: E402

pytestmark = pytest.mark.kernel

DEV = kernel_device()
ACC = torch.float32  # the kernels accumulate in float32 (float64 for float64 inputs)
STEP_ROUNDINGS = 8  # smoke-level budget of roundings per step, the factor of the task's tolerance


# ---------------------------------------------------------------------------------------------------------------------
# float64 references: (a, b) coefficients of h_t = a_t h_{t−1} + b_t, and the recurrence itself

def hgrn_coeffs(x, g):
    return torch.exp(g), x


def mingru_coeffs(z, h_tilde):
    return torch.sigmoid(-z), torch.sigmoid(z) * h_tilde


def minlstm_coeffs(f, i, h_tilde):
    diff = F.softplus(-f) - F.softplus(-i)  # log σ(i) − log σ(f); fine in float64 for the logits drawn here
    return torch.sigmoid(-diff), torch.sigmoid(diff) * h_tilde


def loop_reference(coeffs):
    def dense(*ins, initial_state=None, output_final_state=True):
        a, b = coeffs(*ins)
        B, T, D = a.shape
        h = initial_state if initial_state is not None else a.new_zeros(B, D)
        hs = []
        for t in range(T):
            h = a[:, t] * h + b[:, t]
            hs.append(h)
        return (torch.stack(hs, 1) if hs else a[:, :0] * 0), h

    def fn(*ins, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            o, h = dense(*ins, initial_state=initial_state)
            return o, (h if output_final_state else None)
        offs = cu_seqlens.tolist()
        os_, hs = [], []
        for n in range(len(offs) - 1):
            h0 = initial_state[n:n + 1] if initial_state is not None else None
            o, h = dense(*[x[:, offs[n]:offs[n + 1]] for x in ins], initial_state=h0)
            os_.append(o)
            hs.append(h)
        return torch.cat(os_, 1), (torch.cat(hs, 0) if output_final_state else None)

    return fn


def hgrn_reference(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    return hgrn_sequential(x, g, initial_state=initial_state, output_final_state=output_final_state,
                           cu_seqlens=cu_seqlens)


def draw_hgrn(gen, shape):
    x = torch.randn(shape, generator=gen)
    g = -torch.rand(shape, generator=gen) * 3
    g.view(-1)[::11] = -1e4  # a few exact resets (exp underflows to 0)
    g.view(-1)[::13] = 0.0  # and a few no-decay steps
    return [x, g]


def draw_mingru(gen, shape):
    return [torch.randn(shape, generator=gen) * 3, torch.randn(shape, generator=gen)]


def draw_minlstm(gen, shape):
    return [torch.randn(shape, generator=gen) * 3, torch.randn(shape, generator=gen) * 3,
            torch.randn(shape, generator=gen)]


OPS = {
    "hgrn/triton-fused": (khgrn.fused_recurrent, hgrn_reference, hgrn_coeffs, draw_hgrn),
    "hgrn/triton-scan": (khgrn.scan, hgrn_reference, hgrn_coeffs, draw_hgrn),
    "mingru/triton-scan": (kmin.mingru_scan, loop_reference(mingru_coeffs), mingru_coeffs, draw_mingru),
    "minlstm/triton-scan": (kmin.minlstm_scan, loop_reference(minlstm_coeffs), minlstm_coeffs, draw_minlstm),
}


# ---------------------------------------------------------------------------------------------------------------------
# magnitudes and the bound

def _split(cu, T):
    offs = cu.tolist() if cu is not None else [0, T]
    return [(offs[n], offs[n + 1]) for n in range(len(offs) - 1)]


def magnitudes(coeffs, ins64, h0, do, dht, cu):
    """Output magnitude shadow m_t, its final value, and gradient magnitudes per input (float64), per sequence."""
    B, T, D = ins64[0].shape
    mo, mT, grads = [], [], []
    seqs = _split(cu, T) if cu is not None else [(0, T)]
    for n, (lo, hi) in enumerate(seqs):
        sl = [x[:, lo:hi] for x in ins64]
        h0n = None if h0 is None else (h0[n:n + 1] if cu is not None else h0)
        dhtn = None if dht is None else (dht[n:n + 1] if cu is not None else dht)
        a, b = coeffs(*sl)
        m, _ = shadows(a, b, h0n, torch.zeros_like(a))
        mo.append(m)
        mT.append(m[:, -1] if hi > lo else (h0n.abs() if h0n is not None else a.new_zeros(a.shape[0], D)))
        names = coeffs.__code__.co_varnames[:len(sl)]
        grads.append(grad_magnitudes(coeffs, dict(zip(names, sl)), h0n, do[:, lo:hi], dhtn))
    gm = [torch.cat([g[k] for g in grads], 1) for k in names]
    gm.append(torch.cat([g["initial_state"] for g in grads], 0))
    return torch.cat(mo, 1), torch.cat(mT, 0), gm


def assert_within(name, got, ref, mag, steps, dtype):
    """|got − ref| ≤ u_acc·8·(steps+1)·mag + u_out·mag + (steps+1)·tiny(dtype), elementwise."""
    u_acc = min(unit_roundoff(dtype), unit_roundoff(ACC))
    bound = (u_acc * STEP_ROUNDINGS * (steps + 1) + unit_roundoff(dtype)) * mag + (steps + 1) * tiny(dtype)
    err = (got.detach().double().cpu() - ref.detach().double().cpu()).abs()
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    bad = err > bound
    if bad.any():
        ratio = (err / bound.clamp_min(tiny(torch.float64))).max().item()
        idx = bad.nonzero()[0].tolist()
        raise AssertionError(f"{name}: {int(bad.sum())} elements exceed the bound (worst err/bound {ratio:.3g}); "
                             f"first at {idx}: got {got.flatten()[0] if got.numel() == 1 else got[tuple(idx)]}, "
                             f"ref {ref[tuple(idx)]}")


def run_case(target, B, T, D, cu=None, dtype=torch.float32, with_grad=True, seed=0):
    fn, ref, coeffs, draw = OPS[target]
    gen = torch.Generator().manual_seed(seed)
    ins = [t.to(dtype) for t in draw(gen, (B, T, D))]
    N = B if cu is None else len(cu) - 1
    h0 = torch.randn(N, D, generator=gen).to(dtype)
    do = torch.randn(B, T, D, generator=gen).to(dtype)
    dht = torch.randn(N, D, generator=gen).to(dtype)
    ins_k = [x.to(DEV).requires_grad_(with_grad) for x in ins]
    h0_k = h0.to(DEV).requires_grad_(with_grad)
    cu_k = None if cu is None else torch.tensor(cu, dtype=torch.int32, device=DEV)
    o, hT = fn(*ins_k, initial_state=h0_k, output_final_state=True, cu_seqlens=cu_k)
    assert o.dtype == dtype and hT.dtype == dtype and o.device.type == DEV

    ins64 = [x.double().requires_grad_(True) for x in ins]
    h064 = h0.double().requires_grad_(True)
    cu64 = None if cu is None else torch.tensor(cu)
    ro, rhT = ref(*ins64, initial_state=h064, output_final_state=True, cu_seqlens=cu64)
    mo, mT, gm = magnitudes(coeffs, [x.detach() for x in ins64], h064.detach(), do.double(), dht.double(), cu64)
    steps = T  # every sequence is at most T long
    assert_within(f"{target} o", o, ro, mo, steps, dtype)
    assert_within(f"{target} final_state", hT, rhT, mT, steps, dtype)
    if not with_grad:
        return
    loss = (o * do.to(DEV)).sum() + (hT * dht.to(DEV)).sum()
    grads = torch.autograd.grad(loss, ins_k + [h0_k], allow_unused=True, materialize_grads=True)
    rloss = (ro * do.double()).sum() + (rhT * dht.double()).sum()
    rgrads = torch.autograd.grad(rloss, ins64 + [h064], allow_unused=True, materialize_grads=True)
    names = [f"d{k}" for k in range(len(ins))] + ["d_initial_state"]
    for name, g, rg, m in zip(names, grads, rgrads, gm):
        assert g.dtype == dtype
        assert_within(f"{target} {name}", g, rg, m, steps, dtype)


# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [0, 1, 2, 37, 64])
@pytest.mark.parametrize("target", list(OPS))
def test_dense_fwd_bwd(target, T):
    run_case(target, B=2, T=T, D=5, seed=T)


@pytest.mark.parametrize("target", list(OPS))
def test_varlen_fwd_bwd(target):
    # empty first and middle sequences, a length-1 one, and one longer than a power of two
    run_case(target, B=1, T=40, D=3, cu=[0, 0, 5, 5, 6, 40], seed=1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("target", list(OPS))
def test_dtypes_fwd(target, dtype):
    ok, reason = dtype_runnable(dtype)
    if not ok:
        pytest.skip(reason)
    run_case(target, B=1, T=19, D=4, dtype=dtype, with_grad=(dtype == torch.float64), seed=2)


@pytest.mark.parametrize("target", list(OPS))
def test_optional_state_and_noncontiguous(target):
    fn, ref, _, draw = OPS[target]
    gen = torch.Generator().manual_seed(3)
    ins = [x.to(DEV).transpose(1, 2).contiguous().transpose(1, 2) for x in draw(gen, (2, 9, 3))]
    assert not ins[0].is_contiguous()
    o, hT = fn(*ins)
    assert hT is None
    ro, _ = ref(*[x.double().cpu() for x in ins])
    # no initial state: the same bound shape, with the magnitudes of a zero start
    mo, _, _ = magnitudes(OPS[target][2], [x.double().cpu() for x in ins], None,
                          torch.zeros(2, 9, 3, dtype=torch.float64), None, None)
    assert_within(f"{target} o (no state)", o, ro, mo, 9, torch.float32)


def test_saturated_gates_are_finite():
    """Logits at ±1e4 (σ exactly 0 or 1): finite values and gradients; minLSTM at f = i = −1e4 gives f′ = i′ = 1/2."""
    L = 1e4
    z = torch.tensor([[[L, -L, 0.0, 30.0, -30.0]]], device=DEV).repeat(1, 3, 1).requires_grad_()
    ht = torch.ones_like(z, requires_grad=True)
    o, hT = kmin.mingru_scan(z, ht, output_final_state=True)
    (o.sum() + hT.sum()).backward()
    assert torch.isfinite(o).all() and torch.isfinite(z.grad).all() and torch.isfinite(ht.grad).all()
    assert o[0, :, 0].tolist() == [1.0, 1.0, 1.0] and o[0, :, 1].tolist() == [0.0, 0.0, 0.0]

    f = torch.tensor([[[-L, L, -L, 0.0]]], device=DEV).requires_grad_()
    i = torch.tensor([[[-L, L, 0.0, -L]]], device=DEV).requires_grad_()
    hc = torch.ones_like(f, requires_grad=True)
    h0 = torch.zeros(1, 4, device=DEV, requires_grad=True)
    o, hT = kmin.minlstm_scan(f, i, hc, h0, True)
    (o.sum() + hT.sum()).backward()
    assert o.flatten().tolist() == [0.5, 0.5, 1.0, 0.0]
    for t in (f.grad, i.grad, hc.grad, h0.grad):
        assert torch.isfinite(t).all()


def test_registered():
    for target in OPS:
        t = _FORMS[target]
        assert t.kind == "triton" and t.deterministic and t.traits.accumulate == "float32"
        assert t.traits.cumsum == "none"
        assert {"initial_state", "final_state", "varlen", "grad"} <= t.supports
        assert t.fn is OPS[target][0]


@pytest.mark.parametrize("which", ["mingru", "minlstm"])
def test_gate_relative_accuracy(which):
    """One step from h_0 = 1 with h̃ = 0 gives the decay gate a_1 exactly as output; at logits ~ N(0, 30) it must
    keep its *relative* accuracy (σ(−z) not as 1 − σ(z); minLSTM's small gate not through σ(−diff) of a rounded
    diff, which loses u·|diff|).  Bound: the same u·8·(T+1)·magnitude with T = 1, magnitude = |a_1|."""
    gen = torch.Generator().manual_seed(4)
    n = 512
    logits = [torch.randn(1, 1, n, generator=gen) * 30 for _ in range(1 if which == "mingru" else 2)]
    fn = kmin.mingru_scan if which == "mingru" else kmin.minlstm_scan
    zero = torch.zeros(1, 1, n)
    a_k, _ = fn(*[x.to(DEV) for x in logits], zero.to(DEV), initial_state=torch.ones(1, n, device=DEV))
    if which == "mingru":
        a_ref = torch.sigmoid(-logits[0].double())
    else:  # f′ = σ(f)/(σ(f)+σ(i)) in float64 via log-sigmoids (no underflow at these logits)
        lf, li = F.logsigmoid(logits[0].double()), F.logsigmoid(logits[1].double())
        a_ref = torch.exp(lf - torch.logaddexp(lf, li))
    assert_within(f"{which} decay gate", a_k, a_ref, a_ref.abs(), 1, torch.float32)


_NATIVE_COMPILE = r"""
import itertools, os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rnnconf.kernels import hgrn as H, mingru as M

def compile_one(fn, ptr_args, scan, extra, dt):
    sig, const = {}, {}
    for name in fn.arg_names:
        if name in ptr_args:
            sig[name] = ("*fp32" if name in ("o", "hbuf") else f"*{dt}") if name != "cu" else "*i32"
        elif name in ("T", "D"):
            sig[name] = "i32"
        else:
            sig[name] = "constexpr"
    const.update(BT=64, BD=16, USE_H0=True, STORE_HT=True, USE_DHT=True, IS_VARLEN=True, F64=False, **extra)
    const = {k: v for k, v in const.items() if k in fn.arg_names}
    if not scan:
        const.pop("BT", None)
    triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32))

for fwd, bwd, scan, extra in [(H._hgrn_fused_fwd_kernel, H._hgrn_fused_bwd_kernel, False, {}),
                              (H._hgrn_scan_fwd_kernel, H._hgrn_scan_bwd_kernel, True, {}),
                              (M._min_scan_fwd_kernel, M._min_scan_bwd_kernel, True, {"LSTM": False}),
                              (M._min_scan_fwd_kernel, M._min_scan_bwd_kernel, True, {"LSTM": True})]:
    for fn in (fwd, bwd):
        ptrs = [a for a in fn.arg_names if a not in ("T", "D") and a.upper() != a]
        compile_one(fn, ptrs, scan, extra, sys.argv[1])
print("ok")
"""


@pytest.mark.slow
def test_native_code_path_compiles():
    """Without a GPU: every kernel, as ``triton.jit`` builds it natively (libdevice exp, round-to-nearest division),
    compiles through ptxas for sm_90 — the interpreter never exercises that path."""
    import subprocess
    import sys

    import triton.backends

    if "nvidia" not in getattr(triton.backends, "backends", {}):
        pytest.skip("this triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", _NATIVE_COMPILE, "fp32"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]
