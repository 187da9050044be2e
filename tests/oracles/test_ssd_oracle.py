"""The SSD oracle is itself tested: against the dual (quadratic) form written out as a double sum in float64, on
torch's softplus threshold, on the head → group map h // R, and on dt = −1e4 padding being an identity step."""
import math

import pytest
import torch
import torch.nn.functional as F

from rnnconf.oracles import get_oracle
from rnnconf.oracles.ssd import ssd_oracle


def _inputs(Bsz=1, T=7, G=1, R=1, P=2, N=3, seed=0, h0=True):
    g = torch.Generator().manual_seed(seed)
    H = G * R

    def r(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)

    return {"x": r(Bsz, T, H, P), "dt": r(Bsz, T, H), "A": -r(H).abs() - 0.1, "B": r(Bsz, T, G, N),
            "C": r(Bsz, T, G, N), "D": r(H), "dt_bias": r(H) * 0.5}, (r(Bsz, H, P, N) if h0 else None)


def test_registered():
    assert get_oracle("ssd") is ssd_oracle


@pytest.mark.parametrize("G,R", [(1, 1), (2, 2)])
def test_dual_form_double_sum(G, R):
    """y_t = Σ_{s≤t} (C_t·B_s) exp(Σ_{s<k≤t} Δ_k A) Δ_s x_s + exp(Σ_{k≤t} Δ_k A) H_0 C_t + D x_t, term by term."""
    inp, h0 = _inputs(Bsz=2, G=G, R=R, seed=G)
    res = ssd_oracle(**inp, initial_state=h0)
    x, dt, A, B, C, D, bias = (inp[k] for k in ("x", "dt", "A", "B", "C", "D", "dt_bias"))
    Bsz, T, H, P = x.shape
    dl = F.softplus(dt + bias)
    for b in range(Bsz):
        for h in range(H):
            g = h // R
            for t in range(T):
                want = D[h] * x[b, t, h] + math.exp(float(dl[b, : t + 1, h].sum() * A[h])) * (h0[b, h] @ C[b, t, g])
                for s in range(t + 1):
                    dec = math.exp(float(dl[b, s + 1: t + 1, h].sum() * A[h]))
                    want = want + float(C[b, t, g] @ B[b, s, g]) * dec * dl[b, s, h] * x[b, s, h]
                torch.testing.assert_close(res.values["y"][b, t, h], want, rtol=1e-12, atol=1e-12)


def test_softplus_threshold_is_torchs():
    """Δ = z above 20 (torch's threshold), log1p(exp z) below: the oracle's y for one step, x = B = C = 1, A = 0."""
    for z in (19.5, 20.0, 20.5, -3.0):
        inp = {"x": torch.ones(1, 1, 1, 1, dtype=torch.float64), "dt": torch.full((1, 1, 1), z, dtype=torch.float64),
               "A": torch.zeros(1, dtype=torch.float64), "B": torch.ones(1, 1, 1, 1, dtype=torch.float64),
               "C": torch.ones(1, 1, 1, 1, dtype=torch.float64), "D": torch.zeros(1, dtype=torch.float64),
               "dt_bias": torch.zeros(1, dtype=torch.float64)}
        got = float(ssd_oracle(**inp).values["y"].reshape(()))
        assert got == pytest.approx(float(F.softplus(torch.tensor(z, dtype=torch.float64))), rel=1e-15), z


def test_heads_read_group_h_div_R():
    """Swapping the two groups of B and C swaps heads {0, 1} with heads {2, 3} (G = 2, R = 2)."""
    inp, _ = _inputs(G=2, R=2, seed=3, h0=False)
    y = ssd_oracle(**inp).values["y"]
    sw = dict(inp, B=inp["B"].flip(2), C=inp["C"].flip(2), x=inp["x"][:, :, [2, 3, 0, 1]],
              dt=inp["dt"][:, :, [2, 3, 0, 1]], A=inp["A"][[2, 3, 0, 1]], D=inp["D"][[2, 3, 0, 1]],
              dt_bias=inp["dt_bias"][[2, 3, 0, 1]])
    y2 = ssd_oracle(**sw).values["y"]
    torch.testing.assert_close(y2[:, :, [2, 3, 0, 1]], y, rtol=1e-14, atol=1e-14)


def test_padding_steps_are_identity():
    """Two steps with dt = −1e4 inserted after step 3 leave every later output and the final state unchanged."""
    inp, h0 = _inputs(T=6, seed=5)
    ref = ssd_oracle(**inp, initial_state=h0)

    def ins(v, fill=None):
        pad = torch.full_like(v[:, :2], -1e4) if fill is not None else torch.randn_like(v[:, :2])
        return torch.cat([v[:, :3], pad, v[:, 3:]], 1)

    padded = dict(inp, x=ins(inp["x"]), dt=ins(inp["dt"], -1e4), B=ins(inp["B"]), C=ins(inp["C"]))
    got = ssd_oracle(**padded, initial_state=h0)
    y = got.values["y"]
    torch.testing.assert_close(torch.cat([y[:, :3], y[:, 5:]], 1), ref.values["y"], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(got.values["final_state"], ref.values["final_state"], rtol=1e-14, atol=1e-14)
