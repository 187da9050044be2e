"""Boundary probes and strided inputs: the pieces they are built from (issue 13).

The properties themselves run over every built-in form in tests/properties/test_builtin_forms.py, and the planted
bugs they must catch are in tests/planted/planted_probes.py."""
import torch

from rnnconf.oracles.aaren import aaren_oracle
from rnnconf.oracles.forgetting_attention import acp_oracle, attention_oracle
from rnnconf.properties import PROPERTIES, get_profile, run_property
from rnnconf.properties.probes import probe_edges, sample_lanes
from rnnconf.properties.strided import LAYOUTS, view_in
from rnnconf.registry import all_specs, get_form, get_spec
from rnnconf.spec.base import pow2_boundaries
from rnnconf.spec.targets import Target


def test_pow2_boundaries():
    assert pow2_boundaries(16, 65) == (15, 16, 17, 31, 32, 33, 63, 64, 65)
    assert pow2_boundaries(4, 8) == (3, 4, 5, 7, 8)
    assert pow2_boundaries(16, 256)[-2:] == (255, 256)


def test_every_spec_declares_boundaries_within_range():
    for spec in all_specs():
        for name, d in spec.dims.items():
            assert d.boundaries, f"{spec.id}: dim {name} declares no boundaries"
            assert all(d.lo <= e <= d.hi for e in d.boundaries), (spec.id, name, d.boundaries)
        assert {"T"} <= set(spec.dims)
        assert 4097 in spec.dims["T"].boundaries, spec.id


def test_ci_probes_reach_the_issue_sizes():
    ci = get_profile("ci")
    hgrn, fox = get_spec("hgrn"), get_spec("forgetting-attention")
    assert {63, 64, 65, 127, 128, 129, 257} <= set(probe_edges(hgrn, "T", ci))
    assert 256 not in probe_edges(hgrn, "T", ci) and 4097 not in probe_edges(hgrn, "T", ci)
    assert {65, 513} <= set(probe_edges(hgrn, "D", ci))
    assert {65, 257, 513} <= set(probe_edges(fox, "T", ci))
    assert set(probe_edges(hgrn, "T", get_profile("gpu"))) == set(hgrn.dims["T"].boundaries)


def test_sample_lanes():
    assert sample_lanes(65) == [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64]
    assert sample_lanes(1) == [0]
    assert sample_lanes(513)[-3:] == [511, 512] or sample_lanes(513)[-2:] == [511, 512]


def _fox_inputs(B=2, T=9, H=2, K=3, V=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, H, K, generator=g, dtype=torch.float64),
            torch.randn(B, T, H, K, generator=g, dtype=torch.float64),
            torch.randn(B, T, H, V, generator=g, dtype=torch.float64),
            -torch.rand(B, T, H, generator=g, dtype=torch.float64))


def test_row_restricted_attention_oracle_is_the_full_oracle_at_those_rows():
    q, k, v, g = _fox_inputs()
    rows = [0, 3, 7, 8]
    full, part = attention_oracle(q, k, v, g), attention_oracle(q, k, v, g, rows=rows)
    for field in ("values", "mag", "cond", "steps", "logmass"):
        assert torch.equal(getattr(full, field)["o"][:, rows], getattr(part, field)["o"]), field
    a, b = acp_oracle(q, k, v, g), acp_oracle(q, k, v, g, rows=rows)
    assert torch.equal(a.slack["o"][:, rows], b.slack["o"])
    ua, ub = (sum(r.aux["acp_exponent_units"]) for r in (a, b))
    assert torch.equal(ua[:, rows], ub)
    qa = q[:, 0]
    fa, pa = aaren_oracle(qa, k, v), aaren_oracle(qa, k, v, rows=rows)
    assert torch.equal(fa.values["o"][:, rows], pa.values["o"]) and torch.equal(fa.cond["o"][:, rows], pa.cond["o"])


def test_layouts_are_non_contiguous_views_of_the_same_values():
    t = torch.randn(3, 5, 4)
    const = t[:1].expand_as(t).contiguous()
    for layout in LAYOUTS:
        src = const if layout == "broadcast" else t
        v, buf = view_in(layout, src)
        assert torch.equal(v, src), layout
        assert not v.is_contiguous() or v.storage_offset() > 0, layout
    assert view_in("strided", t)[0].stride()[-1] == 2
    assert view_in("offset", t)[0].storage_offset() == 7
    assert view_in("broadcast", const)[0].stride()[0] == 0
    assert torch.isnan(view_in("strided", t)[1][..., 1::2]).all()  # the gaps are NaN: a read of them shows


def test_strided_inputs_catches_a_target_writing_into_its_input():
    base = get_form("hgrn/sequential")

    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        out = base.fn(x, g, initial_state=initial_state, output_final_state=output_final_state,
                      cu_seqlens=cu_seqlens)
        g.sub_(1.0)  # writes into the caller's tensor
        return out

    bad = Target("hgrn", "writes-input", fn, traits=base.traits, dtypes=base.dtypes, supports=base.supports)
    v = run_property(PROPERTIES["strided-inputs"], get_spec("hgrn"), bad, torch.float32, get_profile("ci"),
                     max_examples=3)
    assert v.status == "failed" and "wrote into its input" in v.reason, v.reason


def test_boundary_probes_state_their_counts_per_dim():
    v = run_property(PROPERTIES["boundary-probes"], get_spec("hgrn"), get_form("hgrn/sequential"), torch.float32,
                     get_profile("ci"))
    assert v.status == "passed", v.reason
    assert v.examples == 1
    for d in ("B", "T", "D"):
        assert f"{d}: " in v.reason, v.reason
