"""The log-space forms' custom backward (rnnconf/impls/mingru.py ``_LogspaceScan``) and the gradient bound's
underflow floor (rnnconf/spec/diagonal.py ``underflow_cofactors``), on the examples of issue 12 where autograd
through the log-space forward failed."""
import pytest
import torch

from rnnconf.impls.mingru import mingru_logspace, mingru_sequential, minlstm_logspace, minlstm_sequential
from rnnconf.spec import diagonal
from rnnconf.spec.errors import tiny, unit_roundoff
from rnnconf.spec.mingru import MINGRU, mingru_coeffs

U32 = unit_roundoff(torch.float32)


def _grads(fn, xs, h0, do):
    xs = [x.clone().requires_grad_(True) for x in xs]
    h0 = h0.clone().requires_grad_(True) if h0 is not None else None
    o, _ = fn(*xs, initial_state=h0)
    leaves = xs + ([h0] if h0 is not None else [])
    return [g.double() for g in torch.autograd.grad((o * do.to(o.dtype)).sum(), leaves)]


@pytest.mark.parametrize("lstm", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_gradcheck_float64(lstm, with_h0):
    gen = torch.Generator().manual_seed(1)
    n = 3 if lstm else 2
    xs = [torch.randn(2, 5, 3, generator=gen, dtype=torch.float64) * 3 for _ in range(n - 1)]
    xs.append(torch.rand(2, 5, 3, generator=gen, dtype=torch.float64) + 0.05)
    h0 = torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.05 if with_h0 else None
    fn = minlstm_logspace if lstm else mingru_logspace
    args = [x.requires_grad_(True) for x in xs] + ([h0.requires_grad_(True)] if with_h0 else [])
    assert torch.autograd.gradcheck(
        lambda *a: fn(*a[:n], initial_state=a[n] if with_h0 else None, output_final_state=True), args)


def test_tiny_candidate_keeps_its_gradient():
    """Issue 12: σ(z)·h̃ = 6e-17 · 1e-30 underflows in float32, but ∂h/∂h̃ = σ(z) does not (autograd through
    exp(log h) gave dh̃ = 0 where −1.27e-16 was exact)."""
    z = torch.tensor([[[-37.3]]])
    ht = torch.tensor([[[1e-30]]])
    do = torch.tensor([[[-2.0]]], dtype=torch.float64)
    got = _grads(mingru_logspace, [z, ht], None, do)
    want = _grads(mingru_sequential, [z.double(), ht.double()], None, do)
    assert want[1].abs().item() > 1e-17
    for g, w in zip(got, want):
        assert ((g - w).abs() <= 16 * U32 * w.abs() + 1e-44).all(), (g, w)


def test_tiny_initial_state_gradient():
    """h_0 = 1e-30: ∂h_1/∂h_0 = f′ needs no log of h_0 (autograd went through exp(log h_0 − log h_1): 60 u)."""
    gen = torch.Generator().manual_seed(2)
    f, i = (torch.randn(1, 1, 16, generator=gen) * 3 for _ in range(2))
    ht = torch.rand(1, 1, 16, generator=gen) + 0.1
    h0 = torch.full((1, 16), 1e-30)
    do = torch.randn(1, 1, 16, generator=gen, dtype=torch.float64)
    got = _grads(minlstm_logspace, [f, i, ht], h0, do)[-1]
    want = _grads(minlstm_sequential, [f.double(), i.double(), ht.double()], h0.double(), do)[-1]
    assert ((got - want).abs() <= 16 * U32 * want.abs()).all(), (got - want).abs().max()


def test_state_at_finfo_max_stays_finite():
    """h̃ = finfo.max with an open gate: exp(log h) may round past finfo.max; h ≤ max(h_0, h̃) clamps it back, so
    output and gradients are finite."""
    fmax = torch.finfo(torch.float32).max
    z = torch.tensor([[[30.0, -30.0, 0.5]]]).transpose(1, 2)
    ht = torch.tensor([[[fmax, fmax, 3.0]]]).transpose(1, 2)
    zr, htr = z.clone().requires_grad_(True), ht.clone().requires_grad_(True)
    o, hT = mingru_logspace(zr, htr, output_final_state=True)
    assert torch.isfinite(o).all() and torch.isfinite(hT).all()
    dz, dht = torch.autograd.grad(o.sum(), [zr, htr])
    assert torch.isfinite(dz).all() and torch.isfinite(dht).all()


def test_underflow_floor_covers_a_subnormal_gate_partial():
    """z = −118.8 after h_1 = 1.3e21: ∂a/∂z = −σ(z)σ(−z) = −2.6e-52 is 0 in float32, but times h_1 the exact dz_2
    is −3.4e-31.  Every float32 form that forms the partial loses it (the sequential one too); the floor
    c_step·tiny·Λ(1 + m_{t−1} + |h̃|) covers that error — and stays below the summands' scale elsewhere."""
    z = torch.tensor([[[486.0], [-118.8]]])
    ht = torch.tensor([[[1.3e21], [6.9e-6]]])
    do = torch.tensor([[[0.0], [1.0]]], dtype=torch.float64)
    want = _grads(mingru_sequential, [z.double(), ht.double()], None, do)[0]
    got = _grads(mingru_sequential, [z, ht], None, do)[0]
    err = (got - want).abs()[0, 1, 0]
    assert abs(want[0, 1, 0]) > 1e-31 and got[0, 1, 0] == 0  # the underflow this floor is for
    cof = diagonal.underflow_cofactors(mingru_coeffs, {"z": z.double(), "h_tilde": ht.double()}, None, do, None)
    floor = MINGRU.error_model.c_step * tiny(torch.float32) * cof
    assert err <= floor[0, 1, 0]
    assert floor[0, 1, 0] < 1e-15  # absolute: ~ tiny · 1e21, nowhere near the magnitude of o (1.3e21)
