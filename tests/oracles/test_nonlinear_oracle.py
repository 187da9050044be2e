"""The nonlinear cells' mpmath oracles against closed forms, their own cell facts, and the running-error bound
against observed float32 errors (sound: never exceeded; useful: tight for a contractive cell, wide for an expanding
one)."""
import math

import pytest
import torch

from rnnconf.impls.nonlinear import SEQUENTIAL
from rnnconf.oracles import get_oracle
from rnnconf.oracles.nonlinear import CellInvariantViolation, check_gates
from rnnconf.spec.errors import unit_roundoff


def _draw(G, B=2, T=6, H=2, D=3, scale=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    Wx = torch.randn(B, T, G, H, D, generator=g, dtype=torch.float64)
    R = scale * torch.randn(G, H, D, D, generator=g, dtype=torch.float64) / math.sqrt(D)
    b = torch.randn(G, H, D, generator=g, dtype=torch.float64)
    return Wx, R, b


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_lstm_one_step_closed_form():
    Wx, R, b = _draw(4, B=1, T=1, H=1, D=1)
    res = get_oracle("lstm")(Wx, R, b)
    i, f, z, o = (float(Wx[0, 0, g, 0, 0] + b[g, 0, 0]) for g in range(4))  # h_0 = c_0 = 0: R plays no part
    c = _sig(i) * math.tanh(z)
    assert res.values["h"][0, 0, 0, 0].item() == pytest.approx(_sig(o) * math.tanh(c), rel=1e-15)
    assert res.values["final_state"][1, 0, 0, 0].item() == pytest.approx(c, rel=1e-15)


def test_gru_reset_after_matmul():
    """h_0 ≠ 0 and one step: n = tanh(Wx_n + r·(R_n h_0 + b_n)), the cuDNN convention."""
    Wx, R, b = _draw(3, B=1, T=1, H=1, D=1)
    h0 = torch.full((1, 1, 1, 1), 0.7, dtype=torch.float64)
    res = get_oracle("gru")(Wx, R, b, initial_state=h0)
    pre = [float(Wx[0, 0, g, 0, 0] + R[g, 0, 0, 0] * 0.7 + b[g, 0, 0]) for g in range(3)]
    r, z = _sig(pre[0]), _sig(pre[1])
    n = math.tanh(float(Wx[0, 0, 2, 0, 0]) + r * (float(R[2, 0, 0, 0]) * 0.7 + float(b[2, 0, 0])))
    assert res.values["h"].item() == pytest.approx((1 - z) * n + z * 0.7, rel=1e-14)


def test_elman_without_recurrence_is_tanh():
    Wx, R, b = _draw(1)
    res = get_oracle("elman")(Wx, torch.zeros_like(R), b)
    assert torch.allclose(res.values["h"], torch.tanh(Wx[:, :, 0] + b[0]), rtol=1e-15, atol=0)


def test_slstm_first_step_is_per_element():
    """One element fresh (n = 0), the other with history: the fresh one's h_1 = σ(õ)·tanh(z̃) exactly."""
    Wx, R, b = _draw(4, B=2, T=1, H=1, D=1)
    R = torch.zeros_like(R)
    s0 = torch.zeros(4, 2, 1, 1, dtype=torch.float64)
    s0[:, 1] = torch.tensor([0.1, 0.5, 2.0, 3.0], dtype=torch.float64).view(4, 1, 1)  # (h, c, n, m) with history
    res = get_oracle("slstm")(Wx, R, b, initial_state=s0)
    z, o = float(Wx[0, 0, 2, 0, 0] + b[2, 0, 0]), float(Wx[0, 0, 3, 0, 0] + b[3, 0, 0])
    assert res.values["h"][0, 0, 0, 0].item() == pytest.approx(_sig(o) * math.tanh(z), rel=1e-14)
    assert res.values["final_state"][2, 0].item() == 1.0  # n_1 = i′ = 1


def test_gate_check_rejects_out_of_range():
    with pytest.raises(CellInvariantViolation):
        check_gates([("f", [1.5])], "test")


@pytest.mark.parametrize("variant", ["NP"])
def test_odyssey_np_equals_lstm(variant):
    Wx, R, b = _draw(4)
    p = torch.randn(3, 2, 3, dtype=torch.float64)
    Rg = torch.randn(3, 3, 2, 3, 3, dtype=torch.float64)
    a = get_oracle("lstm-odyssey")(Wx, R, b, p, Rg, variant)
    ref = get_oracle("lstm")(Wx, R, b)
    assert torch.equal(a.values["h"], ref.values["h"])


@pytest.mark.parametrize("cell,G", [("lstm", 4), ("gru", 3), ("elman", 1), ("slstm", 4)])
def test_bound_holds_for_float32_sequential(cell, G):
    """The derived bound is never exceeded by the torch form in float32 (inputs exact in float32)."""
    Wx, R, b = (t.float().double() for t in _draw(G, T=12, D=8, seed=1))
    res = get_oracle(cell)(Wx, R, b)
    h, _ = SEQUENTIAL[cell](Wx.float(), R.float(), b.float())
    u = unit_roundoff(torch.float32)
    bound = u * res.cond["h"] + u * res.mag["h"]
    err = (h.double() - res.values["h"]).abs()
    assert (err <= bound).all(), float((err / bound).max())


def test_bound_tracks_contraction_and_expansion():
    """Elman with a small R damps old errors (the bound stays flat in T); with a large R near the linear regime
    (small inputs) it amplifies them (the bound grows with T)."""
    Wx, R, b = _draw(1, B=1, T=40, H=1, D=4, scale=0.1, seed=2)
    damp = get_oracle("elman")(Wx, R, b).cond["h"][0, :, 0].amax(-1)
    assert damp[-10:].max() < 2 * damp[:10].max()
    Wx_s = 1e-3 * Wx
    R_big = 3.0 * torch.eye(4, dtype=torch.float64).view(1, 1, 4, 4)
    grow = get_oracle("elman")(Wx_s, R_big, torch.zeros_like(b)).cond["h"][0, :, 0].amax(-1)
    assert grow[5] > 10 * grow[0]
