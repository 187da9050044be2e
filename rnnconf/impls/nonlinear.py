"""Torch sequential forms of the nonlinear cells (see :mod:`rnnconf.spec.nonlinear`): a python loop over t, one
batched matmul per gate and step, autograd for the backward (BPTT).

Canonical signature ``fn(Wx, R, b, initial_state=None, output_final_state=False) -> (h, final_state)`` (the Odyssey
cell adds ``p, Rg`` and ``variant``).  Half inputs are computed in float32 and returned in the input dtype; the state
stays in the compute dtype between steps.  Written independently of the oracle and of the error model's cells.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._common import compute_dtype

_S = {"lstm": 2, "gru": 1, "elman": 1, "slstm": 4, "lstm-odyssey": 5}


def _rec(R, h):
    """R[g]·h for every gate: R [G, H, D_out, D_in], h [B, H, D_in] -> [B, G, H, D_out]."""
    return torch.einsum("ghij,bhj->bghi", R, h)


def lstm_step(x, R, b, st, extra=None):
    h, c = st
    pre = x + _rec(R, h) + b
    i, f, z, o = torch.sigmoid(pre[:, 0]), torch.sigmoid(pre[:, 1]), torch.tanh(pre[:, 2]), torch.sigmoid(pre[:, 3])
    c = f * c + i * z
    return (o * torch.tanh(c), c)


def gru_step(x, R, b, st, extra=None):
    (h,) = st
    rec = _rec(R, h) + b
    r, z = torch.sigmoid(x[:, 0] + rec[:, 0]), torch.sigmoid(x[:, 1] + rec[:, 1])
    n = torch.tanh(x[:, 2] + r * rec[:, 2])
    return ((1 - z) * n + z * h,)


def elman_step(x, R, b, st, extra=None):
    (h,) = st
    return (torch.tanh(x[:, 0] + _rec(R, h)[:, 0] + b[0]),)


def _exp_history(x):
    """f′ = e^x, finite: after the first step x ≤ 0; on a first step (n_{t−1} = 0, so c_{t−1} = 0) x = log σ(f̃) +
    m_{t−1} − ĩ can exceed log(max float) where ĩ ≪ 0, and inf·0 would make c NaN (and its gradient, through
    exp's backward, too).  Capped below the largest finite value, f′·0 = 0 exactly."""
    return torch.exp(x.clamp(max=math.log(torch.finfo(x.dtype).max) - 1))


def slstm_step(x, R, b, st, extra=None):
    """FlashRNN's stabilised sLSTM; the first step (n_{t−1} = 0) decided per element."""
    h, c, n, m = st
    pre = x + _rec(R, h) + b
    it, ft, zt, ot = pre.unbind(1)
    lf = F.logsigmoid(ft) + m
    m_new = torch.where(n == 0, it, torch.where(lf >= it, lf, it))
    ip, fp = torch.exp(it - m_new), _exp_history(lf - m_new)
    c = fp * c + ip * torch.tanh(zt)
    nn = fp * n + ip
    n = torch.where(nn >= 1, nn, torch.ones_like(nn))
    return (torch.sigmoid(ot) * c / n, c, n, m_new)


def odyssey_step(x, R, b, st, extra):
    variant, p, Rg = extra
    h, c, gi, gf, go = st
    pre = x + _rec(R, h) + b
    prev = torch.stack((gi, gf, go), 1)  # [B, 3, H, D]
    if variant == "FGR":  # gate-to-gate recurrence: Σ_a′ Rg[a, a′]·a′_{t−1}
        pre = pre.clone()
        rg = torch.einsum("achij,bchj->bahi", Rg, prev)
        pre[:, 0], pre[:, 1], pre[:, 3] = pre[:, 0] + rg[:, 0], pre[:, 1] + rg[:, 1], pre[:, 3] + rg[:, 2]
    peep = variant != "NP"
    z = pre[:, 2] if variant == "NIAF" else torch.tanh(pre[:, 2])
    one = torch.ones_like(c)
    i = one if variant == "NIG" else torch.sigmoid(pre[:, 0] + (p[0] * c if peep else 0))
    if variant == "CIFG":
        f = 1 - i
    else:
        f = one if variant == "NFG" else torch.sigmoid(pre[:, 1] + (p[1] * c if peep else 0))
    c = z * i + c * f
    o = one if variant == "NOG" else torch.sigmoid(pre[:, 3] + (p[2] * c if peep else 0))
    y = (c if variant == "NOAF" else torch.tanh(c)) * o
    return (y, c, i, f, o)


STEPS = {"lstm": lstm_step, "gru": gru_step, "elman": elman_step, "slstm": slstm_step,
         "lstm-odyssey": odyssey_step}


def run_sequential(cell: str, Wx, R, b, initial_state=None, output_final_state=False, extra=None, step=None):
    """The python loop shared by every cell (``step`` replaces the cell's step: the planted bugs use it)."""
    od = Wx.dtype
    cd = compute_dtype(od)
    B, T, G, H, D = Wx.shape
    S = _S[cell]
    Wx, R, b = Wx.to(cd), R.to(cd), b.to(cd)
    s0 = initial_state.to(cd) if initial_state is not None else Wx.new_zeros(S, B, H, D)
    st = tuple(s0.unbind(0))
    step = step or STEPS[cell]
    hs = []
    for t in range(T):
        st = step(Wx[:, t], R, b, st, extra)
        hs.append(st[0])
    h = torch.stack(hs, 1) if hs else Wx.new_zeros(B, 0, H, D)
    return h.to(od), (torch.stack(st).to(od) if output_final_state else None)


def _api(cell: str):
    if cell == "lstm-odyssey":
        def fn(Wx, R, b, p, Rg, variant="vanilla", initial_state=None, output_final_state=False):
            cd = compute_dtype(Wx.dtype)
            return run_sequential(cell, Wx, R, b, initial_state, output_final_state, (variant, p.to(cd), Rg.to(cd)))
    else:
        def fn(Wx, R, b, initial_state=None, output_final_state=False):
            return run_sequential(cell, Wx, R, b, initial_state, output_final_state)
    fn.__name__ = f"{cell.replace('-', '_')}_sequential"
    fn.__doc__ = f"{cell}: python loop over t (torch), autograd backward."
    return fn


# einsum's reduction order follows the operands' strides (broadcast or offset inputs round differently)
_TRAITS = Traits(accumulate="float32", cumsum="none", layout_dependent=True)
SEQUENTIAL = {}
for _cell in _S:
    SEQUENTIAL[_cell] = _api(_cell)
    register_form(Target(_cell, "sequential", SEQUENTIAL[_cell], traits=_TRAITS,
                         doc="python loop over t, one einsum per step; float32 state for half inputs"))
