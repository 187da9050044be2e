"""An ``InterpreterError`` under the Triton interpreter is a limit of the interpreter, not a verdict on the kernel:
the property is *skipped* with that reason (never passed, never failed), and a smoke call that hits one, or a target
whose every claimed dtype the backend cannot run, does not make the target ``uncallable``.  Natively it stays a
verdict (errored)."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pytest  # noqa: E402
from triton.runtime.errors import InterpreterError  # noqa: E402

from rnnconf.kernels._backend import interpreter_limit  # noqa: E402
from rnnconf.properties import PROPERTIES, get_profile, run_property  # noqa: E402
from rnnconf.properties.calling import TargetRaised  # noqa: E402
from rnnconf.properties.smoke import smoke_call  # noqa: E402
from rnnconf.registry import get_spec  # noqa: E402
from rnnconf.spec.errors import Traits  # noqa: E402
from rnnconf.spec.targets import Skip, Target  # noqa: E402

SPEC = get_spec("hgrn")
TRAITS = Traits(accumulate="float32", cumsum="none")


def _interp_error():
    return InterpreterError(repr(AttributeError("'int' object has no attribute 'to'")))  # as the interpreter does


def _raises_in_interpreter(x, g, initial_state=None, output_final_state=False):
    raise _interp_error()


def _raises_plainly(x, g, initial_state=None, output_final_state=False):
    raise RuntimeError("kernel launch failed")


def _target(fn, **kw):
    return Target("hgrn", fn.__name__, fn, kind="triton", dtypes=(torch.float32,), traits=TRAITS, **kw)


def test_interpreter_limit_names_the_error_and_looks_through_causes(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    try:
        raise TargetRaised("f(x)", _interp_error()) from _interp_error()
    except TargetRaised as e:
        assert "interpreter" in interpreter_limit(e) and "'to'" in interpreter_limit(e)
    assert interpreter_limit(RuntimeError("boom")) is None
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert interpreter_limit(_interp_error()) is None  # natively an error is a verdict


@pytest.mark.parametrize("fn,status", [(_raises_in_interpreter, "skipped"), (_raises_plainly, "errored")])
def test_a_property_call_that_hits_the_interpreter_is_skipped(monkeypatch, fn, status):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    v = run_property(PROPERTIES["oracle"], SPEC, _target(fn), torch.float32, get_profile(), max_examples=2)
    assert v.status == status, v.reason
    if status == "skipped":
        assert "interpreter" in v.reason and "not judged here" in v.reason


def test_smoke_call_is_not_uncallable_for_an_interpreter_limit(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    r = smoke_call(SPEC, _target(_raises_in_interpreter))
    assert r.ok and "interpreter" in r.reason
    assert not smoke_call(SPEC, _target(_raises_plainly)).ok  # a real failure stays uncallable


def test_smoke_call_skips_dtypes_the_target_is_skipped_in(monkeypatch):
    """The smoke call takes a dtype the backend can run the target in; with none, it is not made at all."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    seen = []

    def records(x, g, initial_state=None, output_final_state=False):
        seen.append(x.dtype)
        return x, (x[:, -1] if output_final_state else None)

    t = Target("hgrn", "records", records, kind="triton", dtypes=(torch.float32, torch.float64), traits=TRAITS,
               skips=(Skip("*", "float32 cannot run here", torch.float32),))
    assert smoke_call(SPEC, t).ok and set(seen) == {torch.float64}  # forward, then with grad
    seen.clear()
    none = Target("hgrn", "records", records, kind="triton", dtypes=(torch.float32,), traits=TRAITS,
                  skips=(Skip("*", "float32 cannot run here", torch.float32),))
    r = smoke_call(SPEC, none)
    assert r.ok and seen == [] and "float32 cannot run here" in r.reason
