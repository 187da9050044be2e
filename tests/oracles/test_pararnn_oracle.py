"""The ParaRNN oracles are themselves tested: the Newton iteration in mpmath terminates exactly after T iterations
and keeps an exact prefix (the spec's facts, at 30 digits), an affine ParaGRU is solved in one iteration, the analytic
Jacobian matches the numerical derivative (and a wrong one is refused), and the error model's exact Jacobian equals
the oracle's."""
import mpmath
import pytest
import torch

from rnnconf.oracles import get_oracle
from rnnconf.oracles.pararnn import NewtonOracleError, jacobian, newton_iterates, paragru_oracle, sequential
from rnnconf.spec.pararnn import jacobian64


def _inputs(cell, B=1, T=6, H=1, D=2, seed=0, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    inp = {"Wx": torch.randn(B, T, 3, H, D, generator=g, dtype=torch.float64),
           "a": torch.randn(3, H, D, generator=g, dtype=torch.float64) * scale,
           "b": torch.randn(3, H, D, generator=g, dtype=torch.float64)}
    inp["p"] = torch.randn(2, H, D, generator=g, dtype=torch.float64) * scale if cell == "paralstm" else None
    return inp


def test_registered():
    assert get_oracle("paragru") is paragru_oracle


@pytest.mark.parametrize("cell", ["paragru", "paralstm"])
@pytest.mark.parametrize("scale", [0.6, 3.0])
def test_newton_finite_termination_and_prefix(cell, scale):
    """After k iterations s_1 … s_{k+1} are the sequential values to 30 digits; after T all are (also expanding)."""
    inp = _inputs(cell, scale=scale)
    T = inp["Wx"].shape[1]
    seq = sequential(cell, inp, None)
    its, res = newton_iterates(cell, inp, None, T)
    for k, it in enumerate(its):
        n = min(k + 1, T)
        assert torch.allclose(it[:n], seq[:n], rtol=1e-14, atol=1e-15), (k, (it[:n] - seq[:n]).abs().max())
    assert res[-1] < 1e-14


def test_affine_paragru_one_iteration():
    inp = _inputs("paragru", T=9)
    inp["a"][[0, 2]] = 0  # z and n independent of h: h_t = (1 − z)h_{t−1} + z n, affine
    its, _ = newton_iterates("paragru", inp, None, 1)
    assert torch.allclose(its[1], sequential("paragru", inp, None), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("cell", ["paragru", "paralstm"])
def test_jacobians_agree(cell):
    """The oracle's analytic Jacobian, the error model's autograd one and mpmath.diff agree."""
    inp = _inputs(cell, B=2, T=1, H=1, D=3, seed=3)
    s = tuple(torch.randn(2, 1, 3, dtype=torch.float64) * 0.5 for _ in range({"paragru": 1, "paralstm": 2}[cell]))
    J64 = jacobian64(cell, inp["Wx"][:, 0], inp["a"], inp["b"], inp["p"], s)  # [B, H, D, S, S]
    with mpmath.workdps(30):
        for bi in range(2):
            for d in range(3):
                x = tuple(mpmath.mpf(float(inp["Wx"][bi, 0, g, 0, d])) for g in range(3))
                a = tuple(mpmath.mpf(float(inp["a"][g, 0, d])) for g in range(3))
                b = tuple(mpmath.mpf(float(inp["b"][g, 0, d])) for g in range(3))
                p = tuple(mpmath.mpf(float(inp["p"][k, 0, d])) for k in range(2)) if inp["p"] is not None else None
                st = tuple(mpmath.mpf(float(v[bi, 0, d])) for v in s)
                J = jacobian(cell, x, a, b, p, st)
                for i in range(len(st)):
                    for j in range(len(st)):
                        assert abs(float(J[i][j]) - float(J64[bi, 0, d, i, j])) < 1e-14


def test_wrong_jacobian_is_refused(monkeypatch):
    import rnnconf.oracles.pararnn as O

    real = O.jacobian
    monkeypatch.setattr(O, "jacobian", lambda *a: [[real(*a)[0][0] * 1.001]])
    with pytest.raises(NewtonOracleError, match="mpmath.diff"):
        sequential("paragru", _inputs("paragru", T=2), None)


def test_bound_is_tight_and_newton_adds_its_roundings():
    from rnnconf.spec.errors import Traits

    inp = _inputs("paragru", B=2, T=20, H=2, D=4)
    res = paragru_oracle(inp["Wx"], inp["a"], inp["b"])
    seq = res.aux["form_adjust"](res, Traits(accumulate="float32", cumsum="none"), torch.float32)
    new = res.aux["form_adjust"](res, Traits(accumulate="float32", cumsum="none", solve="newton"), torch.float32)
    assert (new.cond["h"] > seq.cond["h"]).all()
    assert float(seq.cond["h"].max()) < 200  # a contractive cell: no geometric growth over 20 steps
