"""mpmath oracles for ``mingru`` and ``minlstm``: the diagonal recurrence h_t = a_t h_{t−1} + b_t, elementwise.

Gates are evaluated from positive terms only, so they are accurate to working precision for every finite logit
(mpmath's exponent range is unbounded: exp(1e4) is an ordinary mpf):
    mingru:   a = σ(−z) = 1/(1 + eᶻ),   σ(z) = 1/(1 + e⁻ᶻ)
    minlstm:  multiplying σ(f)/(σ(f) + σ(i)) through by (1 + e⁻ᶠ)(1 + e⁻ⁱ),
              f′ = (1 + e⁻ⁱ)/(2 + e⁻ᶠ + e⁻ⁱ),   i′ = (1 + e⁻ᶠ)/(2 + e⁻ᶠ + e⁻ⁱ)
— no 1 − σ, no softplus differences, no 0/0 at logits −1e4 (f′ = i′ = 1/2 there).  Both oracles return h_t, the
magnitude shadow m_t = a_t m_{t−1} + |b_t|, the log-gate mass G_t = Σ_{s≤t} |log a_s| and the step counts.
``initial_state`` is h_0 itself (see :mod:`rnnconf.spec.mingru`).
"""
from __future__ import annotations

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def mp_mingru_gates(z):
    """(a, gate, log a) = (σ(−z), σ(z), −softplus(z)) for an mpf z.  σ(z) = eᶻ σ(−z) (one product, no 1 − σ); log a
    is log of the accurate a (mpf has no underflow, so this is −softplus(z) to working precision)."""
    ez = mpmath.exp(z)
    a = 1 / (1 + ez)
    return a, ez * a, mpmath.log(a)


def mp_minlstm_gates(f, i):
    """(f′, i′, log f′) for mpf logits f, i."""
    ef, ei = mpmath.exp(-f), mpmath.exp(-i)
    nf, ni = 1 + ei, 1 + ef
    den = nf + ni
    fp = nf / den
    return fp, ni / den, mpmath.log(fp)  # f′ is accurate and mpf cannot underflow: no cancelling log difference


def _diagonal_oracle(step, seqs, B, T, D, initial_state, dps) -> OracleResult:
    """Run h_t = a_t h_{t−1} + b_t where ``step(*(mpf inputs at b, t, d)) -> (a, b_t, log a, ℓ_t)``, ℓ_t the
    |log| mass of b_t's factors (|log gate| + |log |h̃_t||).

    Besides the magnitude shadow and log-gate mass it returns the *log-value shadow* for forms that hold values as
    logarithms (Heinsen's log-space scan): each contribution is exp of a rounded log, so it carries a relative error
    of u·(its log mass); propagated by the decays that is  E_t = a_t E_{t−1} + |b_t| ℓ_t  (E_0 = |h_0|·|log|h_0||),
    plus |h_t|·|log|h_t|| for the final exp."""
    h0 = initial_state.double().tolist() if initial_state is not None else [[0.0] * D for _ in range(B)]
    o = [[[None] * D for _ in range(T)] for _ in range(B)]
    m = [[[None] * D for _ in range(T)] for _ in range(B)]
    G = [[[None] * D for _ in range(T)] for _ in range(B)]
    E = [[[None] * D for _ in range(T)] for _ in range(B)]
    hT, mT, ET = [[None] * D for _ in range(B)], [[None] * D for _ in range(B)], [[None] * D for _ in range(B)]
    with mpmath.workdps(dps):
        for b in range(B):
            for d in range(D):
                h = mpmath.mpf(h0[b][d])
                mag = abs(h)
                mass = mpmath.mpf(0)
                lv = abs(h) * _logabs(h)
                for t in range(T):
                    a, bt, la, lb = step(*[mpmath.mpf(s[b][t][d]) for s in seqs])
                    h = a * h + bt
                    mag = a * mag + abs(bt)
                    mass += abs(la)
                    lv = a * lv + abs(bt) * lb
                    o[b][t][d], m[b][t][d], G[b][t][d] = h, mag, mass
                    E[b][t][d] = lv + abs(h) * _logabs(h)
                hT[b][d], mT[b][d], ET[b][d] = h, mag, lv + abs(h) * _logabs(h)
        ot = mp_to_tensor(o, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        mt = mp_to_tensor(m, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        Gt = mp_to_tensor(G, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        Et = mp_to_tensor(E, (B, T, D)) if T else torch.zeros(B, 0, D, dtype=torch.float64)
        fin, fmag, flv = mp_to_tensor(hT, (B, D)), mp_to_tensor(mT, (B, D)), mp_to_tensor(ET, (B, D))
    steps_o = torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1).expand(B, T, D)
    GT = Gt[:, -1] if T else torch.zeros(B, D, dtype=torch.float64)
    return OracleResult(
        values={"o": ot, "final_state": fin},
        mag={"o": mt, "final_state": fmag},
        logmass={"o": Gt, "final_state": GT},
        logvalue={"o": Et, "final_state": flv},
        steps={"o": steps_o, "final_state": torch.full((B, D), float(max(T, 1)), dtype=torch.float64)},
        exact={"o": o, "final_state": hT},
        dps=dps,
    )


def _logabs(v):
    return abs(mpmath.log(abs(v))) if v != 0 else mpmath.mpf(0)


def _mingru_step(z, ht):
    a, gate, la = mp_mingru_gates(z)
    return a, gate * ht, la, _logabs(gate) + _logabs(ht)


def _minlstm_step(f, i, ht):
    fp, ip, la = mp_minlstm_gates(f, i)
    return fp, ip * ht, la, _logabs(ip) + _logabs(ht)


def mingru_oracle(z: torch.Tensor, h_tilde: torch.Tensor, initial_state: torch.Tensor | None = None,
                  dps: int = DEFAULT_DPS) -> OracleResult:
    B, T, D = h_tilde.shape
    return _diagonal_oracle(_mingru_step, [z.double().tolist(), h_tilde.double().tolist()], B, T, D,
                            initial_state, dps)


def minlstm_oracle(f: torch.Tensor, i: torch.Tensor, h_tilde: torch.Tensor, initial_state: torch.Tensor | None = None,
                   dps: int = DEFAULT_DPS) -> OracleResult:
    B, T, D = h_tilde.shape
    return _diagonal_oracle(_minlstm_step, [f.double().tolist(), i.double().tolist(), h_tilde.double().tolist()],
                            B, T, D, initial_state, dps)
