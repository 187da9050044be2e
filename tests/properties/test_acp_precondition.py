"""ACP's guarantee needs g ≤ 0 (D non-increasing away from the diagonal, so a tile's top-right corner holds its
largest bias).  With a positive log-gate inside a key tile the corner rule prunes weight far above ε: the mass check
must say the guarantee is *void* (not 'violated', not a crash), and the same numbers judged as if the precondition
held must be a violation — proof that the precondition matters and that the property notices it."""
import math

import torch

from rnnconf.impls.forgetting_attention import tiled_acp
from rnnconf.oracles.forgetting_attention import acp_oracle
from rnnconf.properties.invariants_fox import acp_mass_verdict, pruned_elements


def _example():
    B, T, H, K, V = 1, 48, 1, 4, 3
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64) * 0.3
    k = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64) * 0.3
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    g = torch.full((B, T, H), -3.0, dtype=torch.float64)
    g[:, 8] = 75.0  # inside key tile 0: keys j < 8 get a bias 75 larger than the tile's top-right corner
    return q, k, v, g


def test_positive_gate_voids_the_guarantee_and_is_noticed():
    q, k, v, g = _example()
    le = -10.0
    o, info = tiled_acp(16, 16)(q, k, v, g, log_eps=le, return_pruning=True)
    assert torch.isfinite(o).all()
    res = acp_oracle(q, k, v, g, log_eps=le)
    mask = pruned_elements(info, q.shape[1])
    assert mask.any(), "the example must prune something"
    limit = torch.full(res.aux["P"].shape[:-1], math.exp(le), dtype=torch.float64)
    status, mass = acp_mass_verdict(res.aux["P"], mask, limit, g)
    assert status == "void"
    assert float(mass.max()) > math.exp(le), "the positive gate must actually break the ε bound"
    # judged as if the precondition held, the same pruning is a violation
    status2, _ = acp_mass_verdict(res.aux["P"], mask, limit, g.clamp(max=0.0))
    assert status2 == "violated"


def test_nonpositive_gate_keeps_the_guarantee():
    q, k, v, g = _example()
    g = g.clamp(max=0.0)
    le = -10.0
    _, info = tiled_acp(16, 16)(q, k, v, g, log_eps=le, return_pruning=True)
    res = acp_oracle(q, k, v, g, log_eps=le)
    mask = pruned_elements(info, q.shape[1])
    assert mask.any()
    limit = torch.full(res.aux["P"].shape[:-1], math.exp(le), dtype=torch.float64)
    assert acp_mass_verdict(res.aux["P"], mask, limit, g)[0] == "ok"
