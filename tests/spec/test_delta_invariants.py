"""The spectral facts of the delta-rule transitions A_t = α_t(I − β_t k_t k_tᵀ), on keys and gates drawn by the
spec's own strategies (unit keys rounded to the dtype, β ∈ [0, 2] with its edges 0, 1, 2): eigenvalues in [−1, 1]
([0, 1] for β ≤ 1), ‖A_t‖₂ ≤ α_t, det = α^K (1 − β‖k‖²), rank(A_t/α_t − I) ≤ 1, β = 2 ⇒ orthogonal.  Checked in float64;
the slack is K·u₆₄ (eigen-solver) plus the exact effect of ‖k‖² ≠ 1 by the key's rounding, β·|‖k‖² − 1|."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.properties import strategies as S
from rnnconf.properties.profiles import get_profile
from rnnconf.registry import get_spec
from rnnconf.spec.delta import SpectralViolation, check_transitions, householder_products, spectral_check, transitions

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


@settings(max_examples=60 if get_profile().name != "ci" else 25, deadline=None, derandomize=True)
@given(st.data())
def test_householder_product_spectrum(data):
    """DeltaProduct's A_t = H_{n_h}⋯H_1 on the spec's own draws (unit keys, near-collinear ones, β edges 0, 1, 2):
    every fact of spectral_check holds, and with unit keys, β ∈ [0, 2] the spectral radius is ≤ 1 — in the unit disk,
    with complex eigenvalues for n_h ≥ 2 (the product is not symmetric)."""
    spec = get_spec("delta-product")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float16, torch.float64]), label="dtype")
    K = data.draw(st.sampled_from([1, 2, 3, 16]), label="K")
    n_h = data.draw(st.integers(1, 4), label="n_h")
    T = data.draw(st.integers(1, 6), label="T")
    k = S.draw_tensor(data, "k", spec.arg("k").domain, (1, T * n_h, 1, K), dtype)
    if data.draw(st.booleans(), label="collinear"):
        k = k[:, :1] + 1e-3 * k
    k = S.unit_rows(k, dtype)
    beta = S.draw_tensor(data, "beta", spec.arg("beta").domain, (1, T * n_h, 1), dtype)
    spectral_check(k, beta, n_h)  # raises SpectralViolation
    A = householder_products(k, beta, n_h)
    kn2 = (k**2).sum(-1)
    slack = (beta * (kn2 - 1).abs()).sum() + 64 * K * n_h * U64
    assert float(torch.linalg.eigvals(A).abs().max()) <= 1 + slack * (1 + 1e6 * (n_h > 1))  # Bauer–Fike loose
    assert float(torch.linalg.matrix_norm(A, ord=2).max()) <= 1 + slack


def test_spectral_check_can_fail():
    """Each check of check_transitions rejects a transition that breaks it (a check that cannot fail is a defect)."""
    K = 4
    k = torch.nn.functional.normalize(torch.randn(1, 2, 1, K, dtype=torch.float64), dim=-1)
    beta = torch.tensor([[[1.5], [2.0]]], dtype=torch.float64)
    A = householder_products(k, beta, 2).reshape(-1, K, K)
    kn2, bb = (k**2).sum(-1).view(1, 2), beta.view(1, 2)
    check_transitions(A, kn2, bb)  # the honest product passes
    with pytest.raises(SpectralViolation, match="‖A_t‖₂"):
        check_transitions(1.01 * A, kn2, bb)
    with pytest.raises(SpectralViolation, match="det"):
        Q = torch.linalg.qr(torch.randn(K, K, dtype=torch.float64))[0]  # orthogonal, wrong determinant/rank
        check_transitions((Q @ torch.diag(torch.tensor([1.0, 1.0, 0.5, -0.5], dtype=torch.float64)) @ Q.T)[None],
                          kn2, bb)
    with pytest.raises(SpectralViolation, match="rank"):
        D = torch.diag(torch.tensor([1.0, -1.0, 0.5, -1.0], dtype=torch.float64))  # ‖·‖, det right; rank(D − I) = 3
        check_transitions(D[None], kn2, bb)
    two = torch.tensor([[2.0, 2.0]], dtype=torch.float64)
    R = householder_products(k, two.view(1, 2, 1), 2).reshape(-1, K, K)
    check_transitions(R, kn2, two)
    # ‖A‖₂ ≤ 1 with |det A| = 1 already forces orthogonality: a non-orthogonal A with β ≡ 2 breaks one of the three
    with pytest.raises(SpectralViolation, match="orthogonal|‖A_t‖₂|det"):
        check_transitions(R @ torch.diag(torch.tensor([1.0, 1.0, 0.9, 1 / 0.9], dtype=torch.float64)), kn2, two)
    with pytest.raises(SpectralViolation, match="eigenvalues"):
        check_transitions(torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.3], dtype=torch.float64))[None],
                          torch.ones(1, 1, dtype=torch.float64), torch.full((1, 1), 0.5, dtype=torch.float64))
