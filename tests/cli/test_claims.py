"""Declared claims: in code (``rnnconf.declare`` / a plain ``__rnnconf__`` dict), on the command line (``--dtypes``,
``--traits``), and what rnnconf observes instead of reading source (a Triton target is one that launches a kernel)."""
import textwrap

import pytest
import torch
from clihelpers import HERE, IMPLS, impl, report, run_subprocess, statuses

from rnnconf.spec.errors import ANY_TRAITS
from rnnconf.targets_resolve import UsageError, cli_claims, resolve

FEW = ("--examples", "2")
ORACLE = ("--property", "oracle")


def _write(tmp_path, body: str, name="declared.py"):
    p = tmp_path / name
    p.write_text(f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom impls import hgrn as _hgrn\n\n"
                 + textwrap.dedent(body))
    return p


# ---- in code ---------------------------------------------------------------------------------------------------
def test_decorator_declaration_is_honoured(tmp_path):
    p = _write(tmp_path, """
        import rnnconf

        @rnnconf.declare(spec="hgrn", dtypes=("float32", "float16"), supports=("initial_state", "final_state", "grad"),
                         traits=dict(accumulate="float32", cumsum="none", chunk_size=None, saves="input",
                                     log_values=False),
                         domains={"x": dict(lo=0.0, open_lo=True, law="lognormal")})
        def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
            return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
    """)
    t = resolve("hgrn", f"{p}:fn").target
    assert t.dtypes == (torch.float32, torch.float16)
    assert t.supports == frozenset({"initial_state", "final_state", "grad"})  # not varlen, though the signature has it
    assert t.traits == ANY_TRAITS.with_(accumulate="float32", cumsum="none", chunk_size=None, saves="input",
                                        log_values=False)
    assert t.domain_overrides["x"].lo == 0.0 and t.domain_overrides["x"].open_lo
    assert t.kind == "external"


def test_plain_dict_declaration_needs_no_rnnconf_import(tmp_path):
    p = _write(tmp_path, """
        def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
            return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)

        fn.__rnnconf__ = {"dtypes": ["float32"], "traits": {"accumulate": "float32"}}
    """)
    r = resolve("hgrn", f"{p}:fn")
    assert r.target.dtypes == (torch.float32,)
    assert r.target.traits == ANY_TRAITS.with_(accumulate="float32")  # what it does not declare stays permissive
    assert any("traits it does not declare" in n for n in r.notes)


def test_command_line_overrides_the_declaration_key_by_key(tmp_path):
    p = _write(tmp_path, """
        def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
            return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)

        fn.__rnnconf__ = {"dtypes": ["float32"], "traits": {"accumulate": "float32", "saves": "input"}}
    """)
    r = resolve("hgrn", f"{p}:fn", claims=cli_claims("float32,float16", "saves=none"))
    assert r.target.dtypes == (torch.float32, torch.float16)
    assert r.target.traits.accumulate == "float32" and r.target.traits.saves is None
    # the canonical string carries the command-line claims, so a worker or a reproducer rebuilds the same target
    assert r.canonical.endswith("[dtypes=float32,float16;traits=saves=none]")
    again = resolve("hgrn", r.canonical).target
    assert (again.dtypes, again.traits) == (r.target.dtypes, r.target.traits)


@pytest.mark.parametrize("decl,needle", [
    ('{"spec": "mingru"}', "declares spec mingru, not 'hgrn'"),
    ('{"dtypes": ["float8"]}', "unknown 'float8'"),
    ('{"traits": {"cumsum": "sometimes"}}', "trait cumsum: expected one of none, chunk, full"),
    ('{"domains": {"x": {"lo": -5.0, "hi": 5.0}, "g": {"lo": -1e9}}}', "does not narrow"),
    ('{"colour": "red"}', "unknown key 'colour'"),
], ids=["spec", "dtype", "trait", "domain-widened", "key"])
def test_bad_declaration_is_a_usage_error(tmp_path, decl, needle):
    p = _write(tmp_path, f"""
        def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
            return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)

        fn.__rnnconf__ = {decl}
    """)
    with pytest.raises(UsageError) as e:
        resolve("hgrn", f"{p}:fn")
    assert needle in str(e.value) and "\n" not in str(e.value)


# ---- on the command line ---------------------------------------------------------------------------------------
def test_traits_flag_is_parsed():
    c = cli_claims(None, "accumulate=float32,cumsum=chunk,chunk_size=64,matmul=tf32,saves=float16")
    t = resolve("hgrn", impl("hgrn"), claims=c).target
    assert t.traits == ANY_TRAITS.with_(accumulate="float32", cumsum="chunk", chunk_size=64, matmul="tf32",
                                        saves="float16")


def test_dtypes_flag_judges_no_unclaimed_dtype(cli, tmp_path):
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--dtypes", "float32,float16", *FEW,
                       *ORACLE, "--report", tmp_path / "r")
    assert code == 0, out
    doc = report(tmp_path / "r")
    st = statuses(doc)
    assert st[("oracle", "float32")] == st[("oracle", "float16")] == "passed"
    for dt in ("float64", "bfloat16"):  # shown, not judged
        v = next(v for v in doc["verdicts"] if (v["prop"], v["dtype"]) == ("oracle", dt))
        assert v["status"] == "not-applicable" and v["reason"].startswith("not claimed: ") and v["examples"] == 0
    assert doc["extra"]["dtypes"] == ["float32", "float16"]


def test_a_claimed_dtype_that_raises_is_errored(tmp_path):
    p = _write(tmp_path, """
        import torch

        def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
            if x.dtype == torch.float16:
                raise TypeError("float16 is not implemented")
            return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
    """)
    from rnnconf.properties import PROPERTIES, get_profile, run_property
    from rnnconf.registry import get_spec

    t = resolve("hgrn", f"{p}:fn", claims=cli_claims("float32,float16")).target
    st = {dt: run_property(PROPERTIES["oracle"], get_spec("hgrn"), t, dt, get_profile("ci"), max_examples=2)
          for dt in (torch.float32, torch.float16, torch.float64)}
    assert st[torch.float32].status == "passed"
    assert st[torch.float16].status == "errored" and "float16 is not implemented" in st[torch.float16].reason
    assert st[torch.float64].status == "not-applicable" and st[torch.float64].reason.startswith("not claimed")


@pytest.mark.parametrize("argv,needle", [
    (("--dtypes", "float8"), "argument --dtypes: dtypes: unknown 'float8'"),
    (("--dtypes", ""), "dtypes: empty list"),
    (("--traits", "accumulate=float8"), "trait accumulate: expected one of"),
    (("--traits", "saves=float8"), "trait saves: expected one of none, input"),
    (("--traits", "colour=red"), "unknown trait 'colour'"),
    (("--traits", "chunk_size=-3"), "chunk_size: expected a positive integer"),
    (("--traits", "accumulate"), "expected KEY=VALUE"),
    (("--fail-on", "bogus"), "argument --fail-on"),
], ids=["dtype", "no-dtypes", "trait-value", "saves", "trait-key", "chunk-size", "not-kv", "fail-on"])
def test_bad_claim_flag_is_one_line_exit_2(cli, argv, needle):
    code, out, err = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("rnnconf: error: ") and "Traceback" not in err
    assert needle in err, err


def test_fail_on_is_parsed():
    from rnnconf.cli import build_parser

    args = build_parser().parse_args(["check", "--spec", "hgrn", "--impl", "x:y", "--fail-on", "defect,precision"])
    assert args.fail_on == frozenset({"defect", "precision"})
    assert build_parser().parse_args(["check", "--spec", "hgrn", "--impl", "x:y"]).fail_on is None


def test_pytest_plugin_takes_the_claims(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(IMPLS.read_text())
    run = run_subprocess(["-m", "pytest", "-p", "rnnconf.pytest_plugin", "-p", "no:cacheprovider", "-rs", "-k",
                          "oracle", "--rnnconf-spec", "hgrn", "--rnnconf-impl", "mypkg.mod:hgrn", "--rnnconf-examples",
                          "2", "--rnnconf-dtypes", "float32", "--rnnconf-traits", "accumulate=float32,saves=input"],
                         cwd=tmp_path, extra_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    # float64 is not judged: either not collected, or a skip that says it is not claimed (never a pass)
    assert "oracle[float64]" not in run.stdout or "not claimed" in run.stdout, run.stdout
    assert "1 passed" in run.stdout, run.stdout
    bad = run_subprocess(["-m", "pytest", "-p", "rnnconf.pytest_plugin", "-p", "no:cacheprovider", "-q",
                          "--collect-only", "--rnnconf-spec", "hgrn", "--rnnconf-impl", "mypkg.mod:hgrn",
                          "--rnnconf-traits", "cumsum=sometimes"], cwd=tmp_path, extra_path=tmp_path)
    assert bad.returncode != 0 and "trait cumsum" in bad.stdout + bad.stderr


# ---- observed, not read from the source --------------------------------------------------------------------------
def test_a_triton_target_is_one_that_launches_a_kernel():
    lazy = resolve("hgrn", f"{HERE / 'triton_impl.py'}:hgrn")  # imports triton inside the call
    assert lazy.target.kind == "triton", lazy.notes
    assert any("launches Triton kernels (_copy)" in n for n in lazy.notes)
    mention = resolve("hgrn", f"{HERE / 'triton_mention.py'}:hgrn")  # imports triton at the top, computes in torch
    assert mention.target.kind == "external", mention.notes


def test_observe_triton_launches_sees_launches_only():
    from triton.runtime.jit import JITFunction

    from rnnconf.kernels._backend import _selftest_kernels, observe_triton_launches

    before = JITFunction.run
    times_two, _ = _selftest_kernels()
    x = torch.arange(8.0)
    y = torch.empty_like(x)
    with observe_triton_launches() as seen:
        torch.exp(x)
    assert not seen.launched and seen.available
    with observe_triton_launches() as seen:
        times_two[(1,)](x, y, 8, BLOCK=8)
    assert seen.launched and seen.count == 1 and seen.kernels == ["_times_two"]
    assert torch.equal(y, 2 * x) and JITFunction.run is before  # restored
