"""mpmath oracle for ``hgrn``: h_t = exp(g_t) h_{t−1} + x_t, one element at a time."""
from __future__ import annotations

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def hgrn_oracle(x: torch.Tensor, g: torch.Tensor, initial_state: torch.Tensor | None = None,
                dps: int = DEFAULT_DPS) -> OracleResult:
    B, T, D = x.shape
    xs, gs = x.double().tolist(), g.double().tolist()
    h0 = initial_state.double().tolist() if initial_state is not None else [[0.0] * D for _ in range(B)]
    o = [[[None] * D for _ in range(T)] for _ in range(B)]
    m = [[[None] * D for _ in range(T)] for _ in range(B)]
    G = [[[None] * D for _ in range(T)] for _ in range(B)]
    hT, mT = [[None] * D for _ in range(B)], [[None] * D for _ in range(B)]
    with mpmath.workdps(dps):
        for b in range(B):
            for d in range(D):
                h = mpmath.mpf(h0[b][d])
                mag = abs(h)
                mass = mpmath.mpf(0)
                for t in range(T):
                    a = mpmath.exp(mpmath.mpf(gs[b][t][d]))
                    xt = mpmath.mpf(xs[b][t][d])
                    h = a * h + xt
                    mag = a * mag + abs(xt)
                    mass += abs(mpmath.mpf(gs[b][t][d]))
                    o[b][t][d], m[b][t][d], G[b][t][d] = h, mag, mass
                hT[b][d], mT[b][d] = h, mag
        ot = mp_to_tensor(o, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        mt = mp_to_tensor(m, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        Gt = mp_to_tensor(G, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        fin, fmag = mp_to_tensor(hT, (B, D)), mp_to_tensor(mT, (B, D))
    steps_o = torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1).expand(B, T, D)
    GT = Gt[:, -1] if T else torch.zeros(B, D, dtype=torch.float64)
    return OracleResult(
        values={"o": ot, "final_state": fin},
        mag={"o": mt, "final_state": fmag},
        logmass={"o": Gt, "final_state": GT},
        steps={"o": steps_o, "final_state": torch.full((B, D), float(max(T, 1)), dtype=torch.float64)},
        exact={"o": o, "final_state": hT},
        dps=dps,
    )
