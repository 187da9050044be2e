"""Torch forms of ``mingru`` and ``minlstm`` (see :mod:`rnnconf.spec.mingru`): sequential, linear-space parallel scan,
Heinsen log-space scan, chunkwise.

Canonical signatures:
    mingru:  fn(z, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)
    minlstm: fn(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)
``initial_state`` is h_0 itself in every form (the log-space form takes log h_0, not log g(h_0)).  Half inputs are
computed in float32 and returned in the input dtype.

Every form is built from per-step coefficients of h_t = a_t h_{t−1} + b_t, computed elementwise in the compute dtype:
    linear:  (a_t, b_t)                      — sequential, scan
    log:     (log a_t, log gate_t) and h̃_t  — chunkwise (log a only; b_t stays linear), log-space
with log a and log gate from softplus (never log σ), so they are finite at logits ±1e4.
"""
from __future__ import annotations

import math

import torch

from ..spec.diagonal import combine
from ..spec.domains import positive
from ..spec.errors import Traits
from ..spec.mingru import mingru_log_gate, minlstm_diff, minlstm_gates, sigmoid, softplus
from ..spec.targets import Target, register_form
from ._common import compute_dtype, hillis_steele, varlen_by_split


# ---- per-spec coefficients (inputs already in the compute dtype; h_tilde last) ------------------------------------
def _mingru_lin(z, h_tilde):
    """σ(−z) directly (not 1 − σ(z)); :func:`~rnnconf.spec.mingru.sigmoid` also keeps its gradient accurate."""
    return sigmoid(-z), sigmoid(z) * h_tilde


def _mingru_log(z, h_tilde):
    """(log a, log gate): log a = −softplus(z), log σ(z) = −softplus(−z)."""
    return -softplus(z), mingru_log_gate(z)


def _minlstm_lin(f, i, h_tilde):
    fp, ip = minlstm_gates(f, i)
    return fp, ip * h_tilde


def _minlstm_log(f, i, h_tilde):
    """log f′ = −softplus(diff), log i′ = −softplus(−diff), diff = softplus(−f) − softplus(−i)."""
    d = minlstm_diff(f, i)
    return -softplus(d), -softplus(-d)


# ---- dense forms, generic over the coefficient functions ---------------------------------------------------------
def _prep(xs, initial_state):
    """Inputs (h_tilde last) in the compute dtype, h_0 (zeros when None), output dtype."""
    out_dtype = xs[-1].dtype
    cd = compute_dtype(out_dtype)
    B, T, D = xs[-1].shape
    h0 = initial_state.to(cd) if initial_state is not None else xs[-1].new_zeros(B, D, dtype=cd)
    return [x.to(cd) for x in xs], h0, out_dtype


def _finish(o, h, out_dtype, output_final_state):
    return o.to(out_dtype), (h.to(out_dtype) if output_final_state else None)


def _sequential(lin):
    def run(*xs, initial_state=None, output_final_state=False):
        """python loop over t: h = a_t h + b_t."""
        xc, h, od = _prep(xs, initial_state)
        a, b = lin(*xc)
        outs = []
        for t in range(a.shape[1]):
            h = a[:, t] * h + b[:, t]
            outs.append(h)
        o = torch.stack(outs, 1) if outs else xc[-1][:, :0]
        return _finish(o, h, od, output_final_state)

    return run


def _scan(lin):
    def run(*xs, initial_state=None, output_final_state=False):
        """Hillis–Steele inclusive scan of (a, b) pairs with the diagonal combine; h_0 folds into b_1."""
        xc, h0, od = _prep(xs, initial_state)
        h, hT = hillis_steele(*lin(*xc), h0)
        return _finish(h, hT, od, output_final_state)

    return run


class _LogspaceScan(torch.autograd.Function):
    """Heinsen's log-space scan forward; the adjoint recurrence in linear space backward (see :func:`_logspace`)."""

    @staticmethod
    def forward(ctx, logc, lin, h0, *xs):
        log_a, log_gate = logc(*xs)
        log_b = log_gate + torch.log(xs[-1])
        a_star = torch.cumsum(log_a, 1)
        if h0 is not None:
            log_b = torch.cat([torch.log(h0)[:, None], log_b], 1)
            a_star = torch.cat([torch.zeros_like(a_star[:, :1]), a_star], 1)
        h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, 1))
        if h0 is not None:
            h = h[:, 1:]
        # h_t is a convex combination of finite inputs, so h_t ≤ finfo.max: an exp of a rounded log h_t ≈ finfo.max
        # that lands past it (u·|log h_t| relative) is clamped back, within the log-value error
        h = h.clamp(max=torch.finfo(h.dtype).max)
        ctx.lin = lin
        ctx.save_for_backward(h0, h, *xs)
        return h

    @staticmethod
    def backward(ctx, dh):
        h0, h, *xs = ctx.saved_tensors
        with torch.enable_grad():  # elementwise partials of (a_t, b_t): each depends on step t's inputs only
            leaves = [x.detach().requires_grad_() for x in xs]
            a, b = ctx.lin(*leaves)
            pa = torch.autograd.grad(a.sum(), leaves, allow_unused=True, retain_graph=True)
            pb = torch.autograd.grad(b.sum(), leaves, allow_unused=True)
        a = a.detach()
        # λ_t = dh_t + a_{t+1} λ_{t+1}: a forward scan over the reversed sequence, coefficient a_{t+1} (0 past T)
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
        lam = hillis_steele(a_next.flip(1), dh.flip(1), torch.zeros_like(dh[:, 0]))[0].flip(1)
        h_prev = torch.cat([(h0 if h0 is not None else torch.zeros_like(h[:, 0]))[:, None], h[:, :-1]], 1)
        dxs = []
        for x, p_a, p_b in zip(xs, pa, pb):
            # |∂a/∂θ| ≤ 1/4 and h_{t−1}, |h̃| ≤ finfo.max: the bracket cannot overflow before λ scales it
            term = torch.zeros_like(x)
            if p_a is not None:
                term = term + p_a * h_prev
            if p_b is not None:
                term = term + p_b
            dxs.append(lam * term)
        dh0 = a[:, 0] * lam[:, 0] if h0 is not None else None
        return (None, None, dh0, *dxs)


def _logspace(logc, lin):
    def run(*xs, initial_state=None, output_final_state=False):
        """Heinsen's log-space scan:  a*_t = Σ_{s≤t} log a_s,  log b_t = log gate_t + log h̃_t,
        log h_t = a*_t + logcumsumexp_{s≤t}(log b_s − a*_s), with s = 0 the term (a*_0 = 0, log b_0 = log h_0).
        Needs h̃ > 0 and h_0 > 0.  Without an initial state (h_0 = 0) the s = 0 term is left out rather than
        fed as log 0 = −inf.

        Backward (custom): the adjoint  λ_t = ∂L/∂h_t + a_{t+1} λ_{t+1}  as a reversed linear scan, then
        ∂L/∂θ_t = λ_t (∂a_t/∂θ_t · h_{t−1} + ∂b_t/∂θ_t),  ∂L/∂h_0 = a_1 λ_1,  with (a_t, b_t) and their partials
        recomputed from the inputs in linear space and h_{t−1} from the forward.  Autograd through the log-space
        forward is wrong in floats: it reaches h̃ through ∂h/∂log b = h = exp(log h), which underflows (σ(z) h̃ =
        1e-16 · 1e-30 is 0 in float32, so ∂h/∂h̃ = σ(z) came out 0) or goes subnormal (1.3e-3 relative in bfloat16's
        float32 compute), and it reaches h_0 through exp(log h_0 − log h_1), a rounded log difference of ≈ 70 for
        h_0 = 1e-30 (60 u relative in ∂L/∂h_0).  Here only h_{t−1} carries the log-value error, which the gradient
        bound charges as the forward's (u·c_log·E/m)."""
        xc, h0, od = _prep(xs, initial_state)
        if xc[-1].shape[1] == 0:
            return _finish(xc[-1][:, :0], h0, od, output_final_state)
        h = _LogspaceScan.apply(logc, lin, h0 if initial_state is not None else None, *xc)
        return _finish(h, h[:, -1], od, output_final_state)

    return run


def _chunk(chunk_size, logc, lin):
    def run(*xs, initial_state=None, output_final_state=False):
        """Within a chunk, with G = cumsum(log a) from the chunk start and b_t = gate_t h̃_t in linear space:
        h_i = exp(G_i) h_prev + Σ_{j≤i} exp(G_i − G_j) b_j  (masked before exp, so no inf·0; masked terms are
        selected away, not multiplied by 0, so a NaN at j > i stays out of h_i)."""
        xc, h, od = _prep(xs, initial_state)
        log_a, _ = logc(*xc)
        _, b = lin(*xc)
        T = b.shape[1]
        outs = []
        for s in range(0, T, chunk_size):
            la, bs = log_a[:, s:s + chunk_size], b[:, s:s + chunk_size]
            C = bs.shape[1]
            G = torch.cumsum(la, 1)  # [B, C, D]
            diff = G[:, :, None, :] - G[:, None, :, :]  # [B, i, j, D]
            mask = torch.ones(C, C, dtype=torch.bool, device=b.device).tril()[None, :, :, None]
            L = torch.exp(torch.where(mask, diff, torch.full_like(diff, -math.inf)))
            # select, don't multiply by a zero mask: 0 · NaN from a later b_j must not reach h_i (causality)
            contrib = torch.where(mask, L * bs[:, None], torch.zeros((), dtype=bs.dtype, device=bs.device))
            o = contrib.sum(2) + torch.exp(G) * h[:, None]
            outs.append(o)
            h = o[:, -1]
        o = torch.cat(outs, 1) if outs else xc[-1][:, :0]
        return _finish(o, h, od, output_final_state)

    return run


# ---- canonical signatures ------------------------------------------------------------------------------------------
def _mingru_api(dense):
    def fn(z, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(z, h_tilde, initial_state=initial_state, output_final_state=output_final_state)
        return varlen_by_split(dense, [z, h_tilde], initial_state, output_final_state, cu_seqlens)

    fn.__doc__ = dense.__doc__
    return fn


def _minlstm_api(dense):
    def fn(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(f, i, h_tilde, initial_state=initial_state, output_final_state=output_final_state)
        return varlen_by_split(dense, [f, i, h_tilde], initial_state, output_final_state, cu_seqlens)

    fn.__doc__ = dense.__doc__
    return fn


_LINEAR = Traits(accumulate="float32", cumsum="none")
_LOGSPACE_DOC = ("Heinsen log-space scan (valid for h̃ > 0, h_0 > 0).  Every value is held as a rounded logarithm, "
                 "so each contribution carries ≈ u·(|log gate| + |log h̃|) relative error: declared with "
                 "Traits(log_values=True), which charges the oracle's log-value shadow (rnnconf.spec.errors).  "
                 "Custom backward: the adjoint recurrence in linear space (autograd through the logs underflows).")


def _register(spec_id, api, lin, logc):
    forms = {
        "sequential": (_sequential(lin), _LINEAR, {}, None, "python loop over t"),
        "scan": (_scan(lin), _LINEAR, {}, combine, "Hillis–Steele scan over (a, b) pairs"),
        "logspace": (_logspace(logc, lin), Traits(accumulate="float32", cumsum="full", log_values=True),
                     {"h_tilde": positive(), "initial_state": positive()}, None, _LOGSPACE_DOC),
        "chunk16": (_chunk(16, logc, lin), Traits(accumulate="float32", cumsum="chunk", chunk_size=16), {}, None,
                    "chunkwise, C = 16"),
        "chunk7": (_chunk(7, logc, lin), Traits(accumulate="float32", cumsum="chunk", chunk_size=7), {}, None,
                   "chunkwise, C = 7 (prime, so most T are not multiples)"),
    }
    out = {}
    for name, (dense, traits, dom, comb, doc) in forms.items():
        fn = api(dense)
        register_form(Target(spec_id, name, fn, traits=traits, domain_overrides=dom, combine=comb, doc=doc))
        out[name] = fn
    return out


MINGRU = _register("mingru", _mingru_api, _mingru_lin, _mingru_log)
MINLSTM = _register("minlstm", _minlstm_api, _minlstm_lin, _minlstm_log)

mingru_sequential, mingru_scan, mingru_logspace = MINGRU["sequential"], MINGRU["scan"], MINGRU["logspace"]
mingru_chunk16, mingru_chunk7 = MINGRU["chunk16"], MINGRU["chunk7"]
minlstm_sequential, minlstm_scan, minlstm_logspace = MINLSTM["sequential"], MINLSTM["scan"], MINLSTM["logspace"]
minlstm_chunk16, minlstm_chunk7 = MINLSTM["chunk16"], MINLSTM["chunk7"]
