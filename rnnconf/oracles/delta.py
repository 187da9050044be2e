"""mpmath oracle for ``delta-rule``, ``gated-delta-rule`` and ``delta-product``: the K×V state updated one
(sub-)step at a time — per token the gate, then n_h delta-rule sub-steps (n_h = 1 for the delta rules), then the
query read — with the normwise error-model ingredients of :mod:`rnnconf.spec.delta` (per-sub-step local error e and
propagation factor ρ, computed from the exact values).  Every call also checks the spectral facts of the example's
transitions (:func:`rnnconf.spec.delta.spectral_check`).  ``use_qk_l2norm_in_kernel``: q and k rows normalised in
mpmath first, x̂ = x/√(Σx² + ε), and the normalisation's error-model terms kept (spec: NORMALISATION MODE)."""
from __future__ import annotations

import math

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def _fro(S):
    return math.sqrt(sum(float(x) ** 2 for row in S for x in row))


def _l2norm_rows(x: torch.Tensor, dps: int):
    """(x̂ as nested lists of mpf, x̂ rounded to float64): x̂ = x/√(Σx² + ε) along the last axis, in mpmath."""
    from ..spec.delta import QK_L2NORM_EPS

    lead = x.shape[:-1]
    rows = x.double().reshape(-1, x.shape[-1]).tolist()
    out = []
    with mpmath.workdps(dps):
        eps = mpmath.mpf(QK_L2NORM_EPS)
        for r in rows:
            m = [mpmath.mpf(a) for a in r]
            inv = 1 / mpmath.sqrt(mpmath.fsum(a * a for a in m) + eps)
            out.append([a * inv for a in m])
    f64 = torch.tensor([[float(a) for a in r] for r in out], dtype=torch.float64).reshape(x.shape) if rows \
        else x.double().clone()

    def nest(flat, shape):
        if len(shape) == 0:  # one row left
            return flat[0]
        step = len(flat) // shape[0] if shape[0] else 0
        return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]

    return (nest(out, tuple(lead)) if rows else x.double().tolist()), f64


def delta_oracle(q, k, v, beta, g=None, scale=None, initial_state=None, dps: int = DEFAULT_DPS,
                 n_h: int = 1, use_qk_l2norm_in_kernel: bool = False) -> OracleResult:
    from ..spec.delta import spectral_check

    B, T, H, K = q.shape
    V = v.shape[-1]
    n = int(n_h)
    norm = bool(use_qk_l2norm_in_kernel)
    s_f = 1.0 / math.sqrt(K) if scale is None else float(scale)
    if norm:  # the recurrence runs on the exact normalised rows; q, k below are their float64 roundings
        qs, q = _l2norm_rows(q, dps)
        ks, k = _l2norm_rows(k, dps)
        vs, bs = (x.double().tolist() for x in (v, beta))
    else:
        qs, ks, vs, bs = (x.double().tolist() for x in (q, k, v, beta))
    spectral_check(k, beta, n)
    gs = g.double().tolist() if g is not None else None
    h0 = initial_state.double().tolist() if initial_state is not None else None
    o = [[[None] * H for _ in range(T)] for _ in range(B)]
    fin = [[None] * H for _ in range(B)]
    e = torch.zeros(B, T * n, H, dtype=torch.float64)
    e_norm = torch.zeros(B, T * n, H, dtype=torch.float64) if norm else None  # per unit c_n (spec)
    rho = torch.zeros(B, T * n, H, dtype=torch.float64)
    Sn = torch.zeros(B, T * n + 1, H, dtype=torch.float64)
    with mpmath.workdps(dps):
        s = (1 / mpmath.sqrt(K)) if scale is None else mpmath.mpf(s_f)
        for b in range(B):
            for h in range(H):
                S = [[mpmath.mpf(h0[b][h][a][c]) if h0 else mpmath.mpf(0) for c in range(V)] for a in range(K)]
                Sn[b, 0, h] = _fro(S)
                for t in range(T):
                    al = mpmath.exp(mpmath.mpf(gs[b][t][h])) if gs is not None else mpmath.mpf(1)
                    for j in range(n):  # sub-step r = t·n_h + j; the gate multiplies the state before j = 0
                        r = t * n + j
                        aj = al if j == 0 else mpmath.mpf(1)
                        kt = [x if norm else mpmath.mpf(x) for x in ks[b][r][h]]
                        vt = [mpmath.mpf(x) for x in vs[b][r][h]]
                        bt = mpmath.mpf(bs[b][r][h])
                        S = [[aj * S[a][c] for c in range(V)] for a in range(K)]
                        kS = [mpmath.fdot(kt, [S[a][c] for a in range(K)]) for c in range(V)]  # kᵀS
                        S = [[S[a][c] - bt * kt[a] * (kS[c] - vt[c]) for c in range(V)] for a in range(K)]
                        kn2 = float(mpmath.fsum(x * x for x in kt))
                        bf, af = float(bt), float(aj)
                        vn = math.sqrt(sum(float(x) ** 2 for x in vt))
                        e[b, r, h] = (K + 4) * (1 + abs(bf) * kn2) * float(Sn[b, r, h]) \
                            + 4 * abs(bf) * math.sqrt(kn2) * vn
                        rho[b, r, h] = af * max(1.0, abs(1 - bf * kn2))
                        if norm:
                            e_norm[b, r, h] = abs(bf) * (2 * kn2 * float(Sn[b, r, h]) + math.sqrt(kn2) * vn)
                        Sn[b, r + 1, h] = _fro(S)
                    qt = [s * (x if norm else mpmath.mpf(x)) for x in qs[b][t][h]]
                    o[b][t][h] = [mpmath.fdot(qt, [S[a][c] for a in range(K)]) for c in range(V)]
                fin[b][h] = S
        ot = mp_to_tensor(o, (B, T, H, V)) if T else torch.zeros(B, 0, H, V, dtype=torch.float64)
        ft = mp_to_tensor(fin, (B, H, K, V))
    qn = s_f * q.double().norm(dim=-1)  # [B, T, H]
    res = OracleResult(values={"o": ot, "final_state": ft}, mag={}, logmass={}, steps={}, exact={"o": o}, dps=dps)
    res.aux.update(e=e, e_norm=e_norm, c_n=0.0, rho=rho, Snorm=Sn, qn=qn, K=K, V=V, T=T, n_h=n,
                   G=torch.cumsum(g.double().abs(), 1) if g is not None else None,
                   inputs={"k": k.double(), "beta": beta.double(), "g": None if g is None else g.double()},
                   form_adjust=form_cond)
    fill_bounds(res, None)
    return res


def fill_bounds(res: OracleResult, kappa: torch.Tensor | None) -> None:
    """mag/cond/steps/logmass of ``res`` for a form whose per-sub-step local error is amplified by ``kappa``
    [B, T·n_h, H] (chunkwise: 1 + C·κ_c; None: sequential); token t is charged the error after its last sub-step.
    In the normalisation mode the rows' rounding (``aux["c_n"]`` × e_norm, the read c_n·s‖q̂‖‖S_t‖) is added
    unamplified: it perturbs the inputs, not the form's evaluation."""
    a = res.aux
    e, rho, Sn, qn, K, V, T, n = a["e"], a["rho"], a["Snorm"], a["qn"], a["K"], a["V"], a["T"], a["n_h"]
    en, cn = a.get("e_norm"), (a.get("c_n", 0.0) if a.get("e_norm") is not None else 0.0)
    B, _, H = rho.shape
    E = torch.zeros(B, H, dtype=torch.float64)
    Es = []
    for r in range(T * n):
        E = rho[:, r] * E + e[:, r] * (kappa[:, r] if kappa is not None else 1.0) + (cn * en[:, r] if cn else 0.0)
        if r % n == n - 1:
            Es.append(E)
    Et = torch.stack(Es, 1) if T else torch.zeros(B, 0, H, dtype=torch.float64)
    So = Sn[:, n::n]
    res.mag = {"o": (qn * So)[..., None].expand(B, T, H, V),
               "final_state": Sn[:, -1][..., None, None].expand(B, H, K, V)}
    res.cond = {"o": ((Et + (K + 2 + cn) * So) * qn)[..., None].expand(B, T, H, V),
                "final_state": (Et[:, -1] if T else torch.zeros(B, H, dtype=torch.float64))[..., None, None]
                .expand(B, H, K, V)}
    steps = n * torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1, 1).expand(B, T, H, V)
    res.steps = {"o": steps, "final_state": torch.full((B, H, K, V), float(max(T * n, 1)), dtype=torch.float64)}
    G = a["G"]
    res.logmass = {"o": None if G is None else G[..., None].expand(B, T, H, V),
                   "final_state": None if G is None else (G[:, -1] if T else torch.zeros(B, H, dtype=torch.float64))
                   [..., None, None].expand(B, H, K, V)}


def form_cond(res: OracleResult, traits, dtype=None):
    """The ``res`` ingredients for a form with these traits and dtype: chunkwise forms get their chunks'
    κ_∞(I + A); in the normalisation mode every form is charged c_n (:func:`rnnconf.spec.delta.l2norm_coefficient`)."""
    from ..spec.delta import DELTA_ERROR, l2norm_coefficient
    from ..spec.delta_product import dp_chunk_condition

    chunked = bool(traits.chunk_size) and res.aux.get("T", 0) > 0
    norm = res.aux.get("e_norm") is not None and dtype is not None
    if not chunked and not norm:
        return res
    kappa = None
    if chunked:
        key = ("kappa", traits.chunk_size)
        if key not in res.aux:
            i = res.aux["inputs"]
            C = min(traits.chunk_size, i["k"].shape[1])  # a chunk is never longer than the (interleaved) sequence
            res.aux[key] = 1 + C * dp_chunk_condition(i["k"], i["beta"], i["g"], C, res.aux["n_h"])
        kappa = res.aux[key]
    out = OracleResult(values=res.values, mag={}, logmass={}, steps={}, exact=res.exact, dps=res.dps,
                       aux=dict(res.aux))
    if norm:
        out.aux["c_n"] = l2norm_coefficient(res.aux["K"], dtype, DELTA_ERROR.accumulate_u(dtype, traits))
    fill_bounds(out, kappa)
    return out


def delta_rule_oracle(q, k, v, beta, scale=None, initial_state=None, dps: int = DEFAULT_DPS,
                      use_qk_l2norm_in_kernel: bool = False):
    return delta_oracle(q, k, v, beta, None, scale, initial_state, dps,
                        use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)


def gated_delta_rule_oracle(q, k, v, beta, g, scale=None, initial_state=None, dps: int = DEFAULT_DPS,
                            use_qk_l2norm_in_kernel: bool = False):
    return delta_oracle(q, k, v, beta, g, scale, initial_state, dps, use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)


def delta_product_oracle(q, k, v, g, beta, num_householder, scale=None, initial_state=None, dps: int = DEFAULT_DPS,
                         use_qk_l2norm_in_kernel: bool = False):
    return delta_oracle(q, k, v, beta, g, scale, initial_state, dps, n_h=num_householder,
                        use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)
