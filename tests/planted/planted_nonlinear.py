"""Planted bugs for the nonlinear cells (lstm, gru, slstm, lstm-odyssey; rnnconf/spec/nonlinear.py): copies of the
step functions of :mod:`rnnconf.impls.nonlinear`, each differing from the correct one in the lines marked ``# BUG``,
run inside the unchanged sequential loop (``run_sequential(step=...)``).

``nonlinear_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnconf.impls._common import compute_dtype
from rnnconf.impls.nonlinear import _exp_history, _rec, run_sequential


# ---- LSTM ---------------------------------------------------------------------------------------------------------
def _lstm_if_swapped(x, R, b, st, extra=None):
    h, c = st
    pre = x + _rec(R, h) + b
    i, f = torch.sigmoid(pre[:, 1]), torch.sigmoid(pre[:, 0])  # BUG: the i and f slots read the other's gate
    z, o = torch.tanh(pre[:, 2]), torch.sigmoid(pre[:, 3])
    c = f * c + i * z
    return (o * torch.tanh(c), c)


def _lstm_r_transposed(x, R, b, st, extra=None):
    h, c = st
    pre = x + torch.einsum("ghji,bhj->bghi", R, h) + b  # BUG: R[g] read as [in, out]
    i, f, z, o = torch.sigmoid(pre[:, 0]), torch.sigmoid(pre[:, 1]), torch.tanh(pre[:, 2]), torch.sigmoid(pre[:, 3])
    c = f * c + i * z
    return (o * torch.tanh(c), c)


def _lstm_bptt_no_c_path(x, R, b, st, extra=None):
    h, c = st
    pre = x + _rec(R, h) + b
    i, f, z, o = torch.sigmoid(pre[:, 0]), torch.sigmoid(pre[:, 1]), torch.tanh(pre[:, 2]), torch.sigmoid(pre[:, 3])
    c = f * c + i * z
    return (o * torch.tanh(c).detach(), c)  # BUG: the backward drops dh_t·o_t·tanh′(c_t), the path from h_t into c_t


# ---- GRU ----------------------------------------------------------------------------------------------------------
def _gru_reset_before(x, R, b, st, extra=None):
    (h,) = st
    rec = _rec(R, h) + b
    r, z = torch.sigmoid(x[:, 0] + rec[:, 0]), torch.sigmoid(x[:, 1] + rec[:, 1])
    n = torch.tanh(x[:, 2] + _rec(R[2:3], r * h)[:, 0] + b[2])  # BUG: R[n]·(r ⊙ h), the reset before the matmul
    return ((1 - z) * n + z * h,)


# ---- sLSTM --------------------------------------------------------------------------------------------------------
def _slstm(first_rule, input_gate_stabilised=True):
    def step(x, R, b, st, extra=None):
        h, c, n, m = st
        pre = x + _rec(R, h) + b
        it, ft, zt, ot = pre.unbind(1)
        lf = F.logsigmoid(ft) + m
        m_new = torch.where(first_rule(n), it, torch.where(lf >= it, lf, it))
        ip = torch.exp(it - m_new) if input_gate_stabilised else torch.exp(it)  # BUG (when not stabilised)
        fp = _exp_history(lf - m_new)
        c = fp * c + ip * torch.tanh(zt)
        nn = fp * n + ip
        n = torch.where(nn >= 1, nn, torch.ones_like(nn))
        return (torch.sigmoid(ot) * c / n, c, n, m_new)

    return step


def _per_element(n):
    return n == 0


def _batch_wide(n):
    return torch.all(n == 0).expand_as(n)  # BUG: one first-step decision for the whole batch (flashrnn's vanilla)


# ---- Odyssey ------------------------------------------------------------------------------------------------------
def _odyssey(bug: str):
    def step(x, R, b, st, extra):
        variant, p, Rg = extra
        h, c, gi, gf, go = st
        pre = x + _rec(R, h) + b
        z = torch.tanh(pre[:, 2])
        if bug == "f-equals-i":  # CIFG
            i = torch.sigmoid(pre[:, 0] + p[0] * c)
            f = i  # BUG: CIFG couples f = 1 − i
        elif bug == "if-read-half-updated-c":
            f = torch.sigmoid(pre[:, 1] + p[1] * c)
            i = torch.sigmoid(pre[:, 0] + p[0] * (f * c))  # BUG: p_i reads c after the in-place forget, not c_{t−1}
        else:
            i = torch.sigmoid(pre[:, 0] + p[0] * c)
            f = torch.sigmoid(pre[:, 1] + p[1] * c)
        c_new = z * i + c * f
        peep_o = c if bug == "o-reads-old-c" else c_new  # BUG (o-reads-old-c): p_o on c_{t−1} where c_t is due
        o = torch.sigmoid(pre[:, 3] + p[2] * peep_o)
        return (o * torch.tanh(c_new), c_new, i, f, o)

    return step


def _cell(cell, step):
    def fn(Wx, R, b, initial_state=None, output_final_state=False):
        return run_sequential(cell, Wx, R, b, initial_state, output_final_state, step=step)

    return fn


def _odyssey_fn(bug, only_variant):
    def fn(Wx, R, b, p, Rg, variant="vanilla", initial_state=None, output_final_state=False):
        cd = compute_dtype(Wx.dtype)
        extra = (variant, p.to(cd), Rg.to(cd))
        step = _odyssey(bug) if variant == only_variant else None  # the other variants stay correct
        return run_sequential("lstm-odyssey", Wx, R, b, initial_state, output_final_state, extra, step=step)

    return fn


def nonlinear_bugs(add) -> None:
    add("lstm-if-swapped", "lstm/sequential", "planted-if-swapped", _cell("lstm", _lstm_if_swapped), {"oracle"},
        "gate order: the input and forget gates read each other's pre-activation slot",
        "issue 14 (gate order i/f swapped); FlashRNN and torch.nn order their gates differently (i,f,z,o vs i,f,g,o)")
    add("lstm-r-transposed", "lstm/sequential", "planted-r-transposed", _cell("lstm", _lstm_r_transposed),
        {"oracle"}, "R[gate, head] read as [in, out] instead of [out, in]",
        "issue 14 (the R transpose); flashrnn's R is [G, H, D_out, P_in]")
    add("lstm-bptt-no-c-path", "lstm/sequential", "planted-bptt-no-c-path", _cell("lstm", _lstm_bptt_no_c_path),
        {"gradients"}, "BPTT drops the gradient from h_t = o_t·tanh(c_t) into c_t (forward unchanged)",
        "issue 14 (BPTT dropping the gradient through c into the output gate)")
    add("gru-reset-before-matmul", "gru/sequential", "planted-reset-before-matmul",
        _cell("gru", _gru_reset_before), {"oracle"},
        "GRU reset applied before the recurrent matmul (the original GRU paper), where cuDNN applies it after",
        "issue 14 (GRU reset before the matmul); torch.nn.GRU / cuDNN apply r ⊙ (W_hn h + b_hn)")
    add("slstm-input-not-stabilised", "slstm/sequential", "planted-input-not-stabilised",
        _cell("slstm", _slstm(_per_element, input_gate_stabilised=False)), {"oracle"},
        "sLSTM input gate e^{ĩ} without subtracting the stabiliser m_t",
        "issue 14 (stabiliser not subtracted from the input gate); models-2.md §5")
    add("slstm-first-step-batch-wide", "slstm/sequential", "planted-first-step-batch-wide",
        _cell("slstm", _slstm(_batch_wide)), {"oracle"},
        "sLSTM first-step rule (m_t = ĩ where n = 0) decided for the whole batch with torch.all(n == 0)",
        "issue 14; flashrnn 1.0.8 vanilla/slstm.py: torch.where(torch.all(n == 0.0), iraw, ...)")
    add("odyssey-cifg-f-equals-i", "lstm-odyssey/sequential", "planted-cifg-f-equals-i",
        _odyssey_fn("f-equals-i", "CIFG"), {"oracle"}, "CIFG with f = i instead of f = 1 − i",
        "issue 14 (CIFG with f = i); Greff et al. arXiv 1503.04069 §3")
    add("odyssey-o-reads-old-c", "lstm-odyssey/sequential", "planted-o-reads-old-c",
        _odyssey_fn("o-reads-old-c", "vanilla"), {"oracle"},
        "output-gate peephole on c_{t−1} where c_t is due",
        "issue 14 (peephole on the wrong c); Greff et al. eq. for o_t uses c_t")
    add("odyssey-i-reads-updated-c", "lstm-odyssey/sequential", "planted-i-reads-updated-c",
        _odyssey_fn("if-read-half-updated-c", "vanilla"), {"oracle"},
        "input-gate peephole on the in-place forgotten f⊙c_{t−1} where c_{t−1} is due (an in-place update "
        "ordering bug)", "issue 14 (peephole on c_t where c_{t−1} is due)")
