"""mpmath oracle for ``delta-rule``, ``gated-delta-rule`` and ``delta-product``: the K×V state updated one
(sub-)step at a time — per token the gate, then n_h delta-rule sub-steps (n_h = 1 for the delta rules), then the
query read — with the normwise error-model ingredients of :mod:`rnnconf.spec.delta` (per-sub-step local error e and
propagation factor ρ, computed from the exact values).  Every call also checks the spectral facts of the example's
transitions (:func:`rnnconf.spec.delta.spectral_check`)."""
from __future__ import annotations

import math

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def _fro(S):
    return math.sqrt(sum(float(x) ** 2 for row in S for x in row))


def delta_oracle(q, k, v, beta, g=None, scale=None, initial_state=None, dps: int = DEFAULT_DPS,
                 n_h: int = 1) -> OracleResult:
    from ..spec.delta import spectral_check

    B, T, H, K = q.shape
    V = v.shape[-1]
    n = int(n_h)
    spectral_check(k, beta, n)
    s_f = 1.0 / math.sqrt(K) if scale is None else float(scale)
    qs, ks, vs, bs = (x.double().tolist() for x in (q, k, v, beta))
    gs = g.double().tolist() if g is not None else None
    h0 = initial_state.double().tolist() if initial_state is not None else None
    o = [[[None] * H for _ in range(T)] for _ in range(B)]
    fin = [[None] * H for _ in range(B)]
    e = torch.zeros(B, T * n, H, dtype=torch.float64)
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
                        kt = [mpmath.mpf(x) for x in ks[b][r][h]]
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
                        Sn[b, r + 1, h] = _fro(S)
                    qt = [s * mpmath.mpf(x) for x in qs[b][t][h]]
                    o[b][t][h] = [mpmath.fdot(qt, [S[a][c] for a in range(K)]) for c in range(V)]
                fin[b][h] = S
        ot = mp_to_tensor(o, (B, T, H, V)) if T else torch.zeros(B, 0, H, V, dtype=torch.float64)
        ft = mp_to_tensor(fin, (B, H, K, V))
    qn = s_f * q.double().norm(dim=-1)  # [B, T, H]
    res = OracleResult(values={"o": ot, "final_state": ft}, mag={}, logmass={}, steps={}, exact={"o": o}, dps=dps)
    res.aux.update(e=e, rho=rho, Snorm=Sn, qn=qn, K=K, V=V, T=T, n_h=n,
                   G=torch.cumsum(g.double().abs(), 1) if g is not None else None,
                   inputs={"k": k.double(), "beta": beta.double(), "g": None if g is None else g.double()},
                   form_adjust=form_cond)
    fill_bounds(res, None)
    return res


def fill_bounds(res: OracleResult, kappa: torch.Tensor | None) -> None:
    """mag/cond/steps/logmass of ``res`` for a form whose per-sub-step local error is amplified by ``kappa``
    [B, T·n_h, H] (chunkwise: 1 + C·κ_c; None: sequential); token t is charged the error after its last sub-step."""
    a = res.aux
    e, rho, Sn, qn, K, V, T, n = a["e"], a["rho"], a["Snorm"], a["qn"], a["K"], a["V"], a["T"], a["n_h"]
    B, _, H = rho.shape
    E = torch.zeros(B, H, dtype=torch.float64)
    Es = []
    for r in range(T * n):
        E = rho[:, r] * E + e[:, r] * (kappa[:, r] if kappa is not None else 1.0)
        if r % n == n - 1:
            Es.append(E)
    Et = torch.stack(Es, 1) if T else torch.zeros(B, 0, H, dtype=torch.float64)
    So = Sn[:, n::n]
    res.mag = {"o": (qn * So)[..., None].expand(B, T, H, V),
               "final_state": Sn[:, -1][..., None, None].expand(B, H, K, V)}
    res.cond = {"o": ((Et + (K + 2) * So) * qn)[..., None].expand(B, T, H, V),
                "final_state": (Et[:, -1] if T else torch.zeros(B, H, dtype=torch.float64))[..., None, None]
                .expand(B, H, K, V)}
    steps = n * torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1, 1).expand(B, T, H, V)
    res.steps = {"o": steps, "final_state": torch.full((B, H, K, V), float(max(T * n, 1)), dtype=torch.float64)}
    G = a["G"]
    res.logmass = {"o": None if G is None else G[..., None].expand(B, T, H, V),
                   "final_state": None if G is None else (G[:, -1] if T else torch.zeros(B, H, dtype=torch.float64))
                   [..., None, None].expand(B, H, K, V)}


def form_cond(res: OracleResult, traits, dtype=None):
    """The ``res`` ingredients for a form with these traits: chunkwise forms get their chunks' κ_∞(I + A)."""
    from ..spec.delta_product import dp_chunk_condition

    if not traits.chunk_size or res.aux.get("T", 0) == 0:
        return res
    key = ("kappa", traits.chunk_size)
    if key not in res.aux:
        i, C = res.aux["inputs"], traits.chunk_size
        res.aux[key] = 1 + C * dp_chunk_condition(i["k"], i["beta"], i["g"], C, res.aux["n_h"])
    out = OracleResult(values=res.values, mag={}, logmass={}, steps={}, exact=res.exact, dps=res.dps,
                       aux=dict(res.aux))
    fill_bounds(out, res.aux[key])
    return out


def delta_rule_oracle(q, k, v, beta, scale=None, initial_state=None, dps: int = DEFAULT_DPS):
    return delta_oracle(q, k, v, beta, None, scale, initial_state, dps)


def gated_delta_rule_oracle(q, k, v, beta, g, scale=None, initial_state=None, dps: int = DEFAULT_DPS):
    return delta_oracle(q, k, v, beta, g, scale, initial_state, dps)


def delta_product_oracle(q, k, v, g, beta, num_householder, scale=None, initial_state=None, dps: int = DEFAULT_DPS):
    return delta_oracle(q, k, v, beta, g, scale, initial_state, dps, n_h=num_householder)
