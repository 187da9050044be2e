"""pytest plugin: rnnconf's generic properties as test items in a third party's own CI.

    pytest --rnnconf-spec hgrn --rnnconf-impl mypkg.ops:my_hgrn [--rnnconf-profile ci|dev|gpu|fuzz]
           [--rnnconf-examples N] [--rnnconf-device cpu|cuda] [--rnnconf-timeout SECONDS] [--rnnconf-report DIR]
           [--rnnconf-dtypes float32,float16] [--rnnconf-traits accumulate=float32,saves=input]
           [--junitxml results.xml]

generates one item per (property, dtype) — exactly the items ``rnnconf check`` runs (see
:func:`rnnconf.isolate.plan`), named ``rnnconf[<spec>:<target>]::<property>[<dtype>]`` — on top of whatever else
pytest collects.  ``passed`` passes, ``failed``/``errored`` fail with the verdict's reason and counterexample,
``skipped`` is a pytest skip with its reason (never a pass).  A property that does not concern the spec is not an
item at all; one the target's declared features exclude (not applicable) is not collected either, and the header
names it with its reason: only real skips are skips.  With ``--rnnconf-report DIR``
the run also writes the conformance report and, for each failure, a counterexample and a reproducer there.

Installed as the ``pytest11`` entry point ``rnnconf`` (or load it with ``-p rnnconf.pytest_plugin``).  Without
``--rnnconf-spec``/``--rnnconf-impl`` it does nothing beyond registering its options, all prefixed ``--rnnconf-``.
Importing it imports neither torch nor triton.
"""
from __future__ import annotations

import os
import time

import pytest

_PROFILES = ("ci", "dev", "gpu", "fuzz")
_STASH = pytest.StashKey()


def pytest_addoption(parser):
    g = parser.getgroup("rnnconf", "rnnconf conformance: rnnconf's generic properties against a spec's oracle")
    g.addoption("--rnnconf-spec", dest="rnnconf_spec", default=None, metavar="ID",
                help="rnnconf spec id to check --rnnconf-impl against (e.g. hgrn)")
    g.addoption("--rnnconf-impl", dest="rnnconf_impl", default=None, metavar="TARGET",
                help="package.module:function, path/to/file.py:function, or an rnnconf adapter name")
    g.addoption("--rnnconf-profile", dest="rnnconf_profile", default=None, choices=_PROFILES,
                help="Hypothesis profile for the rnnconf items (default: RNNCONF_PROFILE or ci)")
    g.addoption("--rnnconf-examples", dest="rnnconf_examples", default=None, type=int, metavar="N",
                help="examples per property (default: the profile's)")
    g.addoption("--rnnconf-device", dest="rnnconf_device", default=None, choices=("cpu", "cuda"),
                help="device the inputs live on (default: the profile's)")
    g.addoption("--rnnconf-timeout", dest="rnnconf_timeout", default=None, type=float, metavar="SECONDS",
                help="per-call timeout for the target (default RNNCONF_CALL_TIMEOUT or 300)")
    g.addoption("--rnnconf-report", dest="rnnconf_report", default=None, metavar="DIR",
                help="also write the conformance report (and reproducers of failures) into DIR")
    g.addoption("--rnnconf-dtypes", dest="rnnconf_dtypes", default=None, metavar="LIST",
                help="the dtypes the target claims, e.g. float32,float16 (others are not judged: 'not claimed')")
    g.addoption("--rnnconf-traits", dest="rnnconf_traits", default=None, metavar="K=V,...",
                help="error-model traits the target declares, e.g. accumulate=float32,cumsum=none,saves=input")


class _Session:
    def __init__(self, spec, resolved, variants, profile, device, examples, timeout, report, impl):
        self.spec, self.resolved, self.variants = spec, resolved, variants
        self.profile, self.device, self.examples, self.timeout = profile, device, examples, timeout
        self.report, self.impl = report, impl
        self.results: list = []
        self.measurements: list = []
        self.started = time.time()


def pytest_configure(config):
    config.addinivalue_line("markers", "rnnconf: an rnnconf conformance item (property x dtype)")
    spec_id = config.getoption("rnnconf_spec")
    impl = config.getoption("rnnconf_impl")
    if spec_id is None and impl is None:
        return
    if not spec_id or not impl:
        raise pytest.UsageError("rnnconf: --rnnconf-spec and --rnnconf-impl go together")
    examples = config.getoption("rnnconf_examples")
    if examples is not None and examples < 1:
        raise pytest.UsageError("rnnconf: --rnnconf-examples must be a positive integer")
    timeout = config.getoption("rnnconf_timeout")
    if timeout is not None and not timeout > 0:
        raise pytest.UsageError("rnnconf: --rnnconf-timeout must be a positive number of seconds")
    prof_name = config.getoption("rnnconf_profile") or os.environ.get("RNNCONF_PROFILE", "ci")
    device = config.getoption("rnnconf_device") or ("cuda" if prof_name == "gpu" else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the target's module imports triton

    import dataclasses

    from .isolate import set_call_timeout
    from .properties import calling, get_profile
    from .targets_resolve import UsageError, autotune_variants, cli_claims, get_spec_or_usage, resolve

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("rnnconf: --rnnconf-device cuda but no CUDA device is available")
    try:
        profile = get_profile(prof_name)
        spec = get_spec_or_usage(spec_id)
        claims = cli_claims(config.getoption("rnnconf_dtypes"), config.getoption("rnnconf_traits"))
        resolved = resolve(spec.id, impl, device, claims=claims)
    except (UsageError, KeyError) as e:
        raise pytest.UsageError(f"rnnconf: {e.args[0] if e.args else e}") from None
    if profile.device != device:
        profile = dataclasses.replace(profile, device=device)
    set_call_timeout(timeout or calling.CALL_TIMEOUT_S)
    variants = []
    if resolved.origin == "adapter":
        try:
            variants = autotune_variants(impl)
        except Exception:  # noqa: BLE001  (the main target still runs)
            variants = []
    config.stash[_STASH] = _Session(spec, resolved, variants, profile, device, examples,
                                          calling.CALL_TIMEOUT_S, config.getoption("rnnconf_report"), impl)


def _session(config) -> _Session | None:
    return config.stash.get(_STASH, None)


def pytest_report_header(config):
    s = _session(config)
    if s is None:
        return None
    t = s.resolved.target
    lines = [f"rnnconf: {t.id} ({t.kind}, {s.resolved.origin}) against spec {s.spec.id}; profile {s.profile.name}, "
             f"device {s.device}, per-call timeout {s.timeout:g} s"]
    na = _plan(s)[1]
    if na:
        lines.append("rnnconf: not applicable to this target, not collected: "
                     + "; ".join(f"{it.display}[{it.dtype}] ({why})" for it, why in na))
    return lines


def _plan(s):
    """``(items to collect, [(item, reason)])``: the spec's items (:func:`rnnconf.isolate.plan`; properties that do
    not concern the spec are not in it at all), split off those the target's declared features exclude.  Those are
    not collected — not-applicable is neither a pass nor a skip: only real skips are skips — but named in the header
    and kept, as not-applicable verdicts, for the report."""
    if getattr(s, "split_plan", None) is None:
        from .isolate import plan
        from .properties.checks import PROPERTIES

        run, na = [], []
        for it in plan(s.spec, s.resolved.target, s.variants, examples=s.examples):
            why = PROPERTIES[it.prop].not_applicable(s.spec, s.resolved.target)
            if why:
                na.append((it, why))
            else:
                run.append(it)
        s.split_plan = (run, na)
    return s.split_plan


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    s = _session(config)
    if s is None:
        return
    name = f"rnnconf[{s.spec.id}:{s.impl}]"
    suite = RnnconfSuite.from_parent(session, name=name, nodeid=name)
    items.extend(session.genitems(suite))  # through the collection hooks, so reporters count the items


class RnnconfFailure(Exception):
    """A failed or errored verdict (its message is the whole report)."""


class RnnconfSuite(pytest.Collector):
    def collect(self):
        from .properties.checks import PROPERTIES
        from .properties.runner import Verdict

        s = _session(self.config)
        run, na = _plan(s)
        t = s.resolved.target
        s.results += [(it, Verdict(it.prop, t.id, s.spec.id, it.dtype, "not-applicable", reason=why,
                                   required=PROPERTIES[it.prop].required)) for it, why in na]
        for it in run:
            yield RnnconfItem.from_parent(self, name=f"{it.display}[{it.dtype}]", item=it)


class RnnconfItem(pytest.Item):
    def __init__(self, *, item, **kw):
        super().__init__(**kw)
        self.item = item
        self.add_marker(pytest.mark.rnnconf)

    def runtest(self):
        from .isolate import run_item

        s = _session(self.config)
        vmap = {lab: t for lab, t in s.variants if lab}
        o = run_item(self.item, s.spec, s.resolved.target, s.profile, max_examples=s.examples, variants=vmap)
        v = o.verdict
        s.results.append((self.item, v))
        s.measurements += o.measurements
        self.user_properties += [("rnnconf_status", v.status), ("rnnconf_examples", v.examples),
                                 ("rnnconf_worst_ratio", "—" if v.worst_ratio is None else f"{v.worst_ratio:.6g}")]
        if v.status in ("skipped", "not-applicable"):
            try:  # reported at the item (not at this line of the plugin)
                raise pytest.skip.Exception(f"{v.status}: {v.reason}", _use_item_location=True)
            except TypeError:
                pytest.skip(f"{v.status}: {v.reason}")
        if v.status not in ("passed", "skipped", "not-applicable"):  # failed, errored, crashed, not-run, …
            cls = getattr(v, "failure_class", None)
            lines = [f"{v.status}{f' ({cls})' if cls else ''}: {v.reason}"]
            if v.counterexample is not None:
                lines.append(f"counterexample: {v.counterexample}")
            if s.report:
                from .reproducer import write_reproducer

                try:
                    got = write_reproducer(v, s.report, item=self.item, target=s.resolved.canonical,
                                           name=s.resolved.target.name,
                                           device=s.device, profile=s.profile.name, timeout=s.timeout,
                                           command=f"pytest --rnnconf-spec {s.spec.id} --rnnconf-impl {s.impl}")
                except Exception:  # noqa: BLE001
                    got = None
                if got:
                    lines.append(f"reproducer: {got[0]}")
            if not v.required:
                pytest.xfail("not a required property: " + "\n".join(lines))
            raise RnnconfFailure("\n".join(lines))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RnnconfFailure):
            return f"{self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        s = _session(self.config)
        return self.parent.name, 0, f"rnnconf {s.spec.id} {s.impl} {self.name}"


def pytest_sessionfinish(session, exitstatus):
    s = _session(session.config)
    if s is None or not s.report or not s.results:
        return
    import io

    from .progress import Out
    from .session import TargetRun, finish_target

    by_key = {it.key: (it, v) for it, v in s.results}
    try:
        run = TargetRun(s.resolved, list(by_key.values()), s.measurements, s.started, time.time())
        finish_target(s.spec, run, report_dir=s.report, profile=s.profile, device=s.device, timeout=s.timeout,
                      isolate=False,
                      command=f"pytest --rnnconf-spec {s.spec.id} --rnnconf-impl {s.impl}", out=Out(io.StringIO()),
                      target_arg=s.impl)
    except Exception as e:  # noqa: BLE001  (never turn a finished test run into a crash)
        session.config.get_terminal_writer().line(f"rnnconf: could not write the report: {type(e).__name__}: {e}")
