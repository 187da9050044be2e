"""The spectral facts of the delta-rule transitions A_t = α_t(I − β_t k_t k_tᵀ), on keys and gates drawn by the
spec's own strategies (unit keys rounded to the dtype, β ∈ [0, 2] with its edges 0, 1, 2): eigenvalues in [−1, 1]
([0, 1] for β ≤ 1), ‖A_t‖₂ ≤ α_t, det = α^K (1 − β‖k‖²), rank(A_t/α_t − I) ≤ 1, β = 2 ⇒ orthogonal.  Checked in float64;
the slack is K·u₆₄ (eigen-solver) plus the exact effect of ‖k‖² ≠ 1 by the key's rounding, β·|‖k‖² − 1|."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.properties import strategies as S
from rnnconf.properties.profiles import get_profile
from rnnconf.registry import get_spec
from rnnconf.spec.delta import transitions

U64 = 2.0**-53


@settings(max_examples=60 if get_profile().name != "ci" else 25, deadline=None, derandomize=True)
@given(st.data())
def test_transition_spectrum(data):
    spec = get_spec("gated-delta-rule")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float16, torch.float64]), label="dtype")
    K = data.draw(st.sampled_from([1, 2, 3, 16, 33]), label="K")
    n = data.draw(st.integers(1, 12), label="steps")
    k = S.unit_rows(S.draw_tensor(data, "k", spec.arg("k").domain, (n, K), dtype), dtype)
    beta = S.draw_tensor(data, "beta", spec.arg("beta").domain, (n,), dtype)
    g = S.draw_tensor(data, "g", spec.arg("g").domain, (n,), dtype)
    A = transitions(k, beta)  # ungated factor I − βkkᵀ
    alpha = torch.exp(g)
    kn2 = (k**2).sum(-1)
    tol = K * 8 * U64 + beta * (kn2 - 1).abs()
    ev = torch.linalg.eigvalsh(A)  # symmetric
    assert (ev >= -1 - tol[:, None]).all() and (ev <= 1 + tol[:, None]).all()
    small = beta <= 1
    assert (ev[small] >= -tol[small, None]).all()
    # ‖α A‖₂ ≤ α
    nrm = torch.linalg.matrix_norm(alpha[:, None, None] * A, ord=2)
    assert (nrm <= alpha * (1 + tol)).all()
    # det A = 1 − β‖k‖²  and rank(A − I) ≤ 1
    det = torch.linalg.det(A)
    assert ((det - (1 - beta * kn2)).abs() <= K * 8 * U64 * (1 + beta * kn2)).all()
    sv = torch.linalg.svdvals(A - torch.eye(K, dtype=torch.float64))
    if K > 1:
        assert (sv[:, 1:] <= K * 8 * U64 * (1 + beta[:, None])).all()
    # β = 2 ⇒ AᵀA = I (up to the key's rounding)
    two = beta == 2
    if two.any():
        Ao = A[two]
        err = (Ao.transpose(-1, -2) @ Ao - torch.eye(K, dtype=torch.float64)).abs().amax((-2, -1))
        assert (err <= 4 * tol[two] + K * 8 * U64).all()
