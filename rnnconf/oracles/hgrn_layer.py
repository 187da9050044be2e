"""mpmath oracle for ``hgrn-layer``: λ_t = γ + (1−γ)σ(f_t), h_t = λ_t e^{iθ} h_{t−1} + (1−λ_t) c_t over ℂ, one
channel at a time; and for the layer lower bounds γ^l = Σ_{j=1}^{l} softmax(Γ)_j.

λ and 1 − λ are both evaluated from e^{−f} directly (σ(f) = 1/(1+e^{−f}), σ(−f) = e^{−f}/(1+e^{−f})), so neither
loses relative accuracy at any working precision, even where λ is within 10^{-dps} of 1.
"""
from __future__ import annotations

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def _gates(f, gamma):
    """(λ, 1 − λ, |log λ|) at the working precision, for mpf f and γ."""
    e = mpmath.exp(-f)
    lam = gamma + (1 - gamma) / (1 + e)
    om = (1 - gamma) * e / (1 + e)
    loglam = mpmath.log1p(-om) if om < 0.5 else mpmath.log(lam)
    return lam, om, abs(loglam)


def gate_oracle(f: torch.Tensor, gamma: torch.Tensor, dps: int = DEFAULT_DPS) -> dict[str, torch.Tensor]:
    """λ, 1 − λ and log λ for f: [..., D] and γ: [D] (broadcast), each correctly rounded to float64 (log λ = −∞
    never occurs: the logit domain is bounded)."""
    fs = f.double()
    gs = gamma.double().expand_as(fs)
    lam, om, lg = [], [], []
    with mpmath.workdps(dps):
        for fv, gv in zip(fs.flatten().tolist(), gs.flatten().tolist()):
            a, w, al = _gates(mpmath.mpf(fv), mpmath.mpf(gv))
            lam.append(float(a))
            om.append(float(w))
            lg.append(-float(al))
    shape = fs.shape
    return {"lambda": torch.tensor(lam, dtype=torch.float64).reshape(shape),
            "complement": torch.tensor(om, dtype=torch.float64).reshape(shape),
            "log_lambda": torch.tensor(lg, dtype=torch.float64).reshape(shape)}


def hgrn_layer_oracle(f: torch.Tensor, c_re: torch.Tensor, c_im: torch.Tensor, gamma: torch.Tensor,
                      theta: torch.Tensor, initial_state: torch.Tensor | None = None,
                      dps: int = DEFAULT_DPS) -> OracleResult:
    """Values: o [B, T, D] and final_state [B, D] as complex128.  mag: the magnitude shadow
    m_t = λ_t m_{t−1} + (1−λ_t)|c_t|, m_0 = |h_0| (float64, same shapes).  logmass: the ℓ1 mass of the complex
    log-gate G_t = Σ_{s≤t} (|log λ_s| + |θ|) (float64, same shapes).  steps: t+1 for o, max(T, 1) for the final
    state.  exact: the mpc values."""
    B, T, D = f.shape
    fs, crs, cis = f.double().tolist(), c_re.double().tolist(), c_im.double().tolist()
    gs, ths = gamma.double().tolist(), theta.double().tolist()
    if initial_state is None:
        h0 = [[0j] * D for _ in range(B)]
    else:
        h0 = initial_state.to(torch.complex128).tolist() if initial_state.is_complex() \
            else initial_state.double().tolist()
    o = [[[None] * D for _ in range(T)] for _ in range(B)]
    m = [[[None] * D for _ in range(T)] for _ in range(B)]
    G = [[[None] * D for _ in range(T)] for _ in range(B)]
    hT, mT, GT = ([[None] * D for _ in range(B)] for _ in range(3))
    with mpmath.workdps(dps):
        for d in range(D):
            gam = mpmath.mpf(gs[d])
            th = mpmath.mpf(ths[d])
            rot = mpmath.expj(th)
            for b in range(B):
                z = complex(h0[b][d])
                h = mpmath.mpc(z.real, z.imag)
                mag = abs(h)
                mass = mpmath.mpf(0)
                for t in range(T):
                    lam, om, al = _gates(mpmath.mpf(fs[b][t][d]), gam)
                    c = mpmath.mpc(crs[b][t][d], cis[b][t][d])
                    h = lam * rot * h + om * c
                    mag = lam * mag + om * abs(c)
                    mass += al + abs(th)
                    o[b][t][d], m[b][t][d], G[b][t][d] = h, mag, mass
                hT[b][d], mT[b][d], GT[b][d] = h, mag, mass
        if T:
            ot = mp_to_tensor(o, (B, T, D), complex_=True)
            mt, Gt = mp_to_tensor(m, (B, T, D)), mp_to_tensor(G, (B, T, D))
        else:
            ot = torch.zeros(B, 0, D, dtype=torch.complex128)
            mt = Gt = torch.zeros(B, 0, D, dtype=torch.float64)
        if T:
            fin, fmag, fG = mp_to_tensor(hT, (B, D), complex_=True), mp_to_tensor(mT, (B, D)), mp_to_tensor(GT, (B, D))
        else:  # no steps: the final state is h_0
            fin = torch.tensor(h0, dtype=torch.complex128).reshape(B, D)
            fmag, fG = fin.abs(), torch.zeros(B, D, dtype=torch.float64)
            hT = [[mpmath.mpc(complex(v).real, complex(v).imag) for v in row] for row in h0]
    steps_o = torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1).expand(B, T, D)
    return OracleResult(
        values={"o": ot, "final_state": fin},
        mag={"o": mt, "final_state": fmag},
        logmass={"o": Gt, "final_state": fG},
        steps={"o": steps_o, "final_state": torch.full((B, D), float(max(T, 1)), dtype=torch.float64)},
        exact={"o": o, "final_state": hT},
        dps=dps,
    )


def lower_bounds_oracle(Gamma: torch.Tensor, dps: int = DEFAULT_DPS) -> OracleResult:
    """γ^l = Σ_{j=1}^{l} P_j, P = softmax(Γ) over the layer axis, for Γ: [L, D].

    The working precision is raised by the spread of Γ (in decimal digits) so that 1 − γ^l stays resolved however
    small P_0 is: at a fixed 30 digits a spread of 160 would round γ^{L−1} = 1 − e^{−160}… to exactly 1.
    values: {"gamma": [L, D], "softmax": [L, D], "gap": [L, D] (1 − γ^l = P_0 + Σ_{j>l} P_j, summed directly),
    "top_gap": [D] (= P_0 = 1 − γ^{L−1})}, float64.  mag = the values (all sums have non-negative terms);
    steps: l + 1."""
    L, D = Gamma.shape
    Gs = Gamma.double().tolist()
    gam = [[None] * D for _ in range(L)]
    Ps = [[None] * D for _ in range(L)]
    gaps = [[None] * D for _ in range(L)]
    spread = (max(max(r) for r in Gs) - min(min(r) for r in Gs)) if L and D else 0.0
    with mpmath.workdps(dps + int(spread / 2.302585092994046) + 5):
        for d in range(D):
            col = [mpmath.mpf(Gs[j][d]) for j in range(L)]
            M = max(col)
            w = [mpmath.exp(x - M) for x in col]
            S = mpmath.fsum(w)
            P = [x / S for x in w]
            acc = mpmath.mpf(0)
            for j in range(L):
                Ps[j][d] = P[j]
                if j > 0:
                    acc += P[j]
                gam[j][d] = acc
            rest = mpmath.mpf(0)
            for j in reversed(range(L)):
                gaps[j][d] = P[0] + rest
                rest += P[j]
        g_t, P_t = mp_to_tensor(gam, (L, D)), mp_to_tensor(Ps, (L, D))
        gap_t = mp_to_tensor(gaps, (L, D))
    steps = torch.arange(1, L + 1, dtype=torch.float64).view(L, 1).expand(L, D)
    return OracleResult(
        values={"gamma": g_t, "softmax": P_t, "gap": gap_t, "top_gap": gap_t[-1] if L else gap_t.new_zeros(D)},
        mag={"gamma": g_t, "softmax": P_t},
        logmass={"gamma": None, "softmax": None},
        steps={"gamma": steps, "softmax": torch.ones(L, D, dtype=torch.float64)},
        exact={"gamma": gam, "softmax": Ps},
        dps=dps,
    )
