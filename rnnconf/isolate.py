"""Planning and running the (property, dtype) items of one target — in this process, or in a worker subprocess.

:func:`plan` lists what a conformance run judges: every property (its ``not-applicable`` verdict included, so the
report says why), once per dtype of the target for ``all_dtypes`` properties and once in the primary dtype
otherwise, plus one ``oracle`` item per autotune config of an adapter whose kernels are autotuned (triton #9230:
configs that share an output buffer can hide a broken one).

:func:`run_item` runs one item in this process.  A target call that exceeds the per-call timeout is not shrunk (every
shrinking attempt would hang again): the first timeout ends the property with an ``errored`` verdict carrying that
example.

:class:`Worker` runs items in a ``python -m rnnconf.isolate`` child (``--isolate``), so that a target that crashes the
process (segfault, ``os.abort``, a CUDA fault) or hangs inside C code becomes an ``errored`` verdict — "target crashed
the process (signal N)" / "killed after N s" — and the run goes on in a fresh child.  The child reports each target
call's start and end on a pipe; the parent kills it when a call runs past the timeout plus a grace period.  Each
example is saved before it runs, so even a crash leaves a counterexample and a reproducer.  (Not covered: a hang
inside the target's *backward* in C code, which happens outside a target call.)
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import torch

GRACE_S = 5.0  # after the per-call timeout (whose SIGALRM stops Python-level hangs) before the parent kills


@dataclass(frozen=True)
class Item:
    """One verdict to produce: ``prop`` (a name in PROPERTIES) in ``dtype``, on the target or one autotune variant."""

    prop: str
    dtype: str
    variant: str | None = None  # autotune label
    variant_index: int | None = None
    max_examples: int | None = None  # overrides the run's count (small for variants)

    @property
    def display(self) -> str:
        if self.variant is None:
            return self.prop
        return f"{self.prop}[config {self.variant_index}: {self.variant}]"

    @property
    def key(self) -> str:
        return f"{self.display}-{self.dtype}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Outcome:
    verdict: object  # rnnconf.properties.runner.Verdict
    measurements: list = field(default_factory=list)


def dtype_from_name(name: str) -> torch.dtype:
    return getattr(torch, name)


VARIANT_EXAMPLES = 5


def plan(spec, target, variants=(), only: list[str] | None = None, examples: int | None = None) -> list[Item]:
    """The items of a conformance run.  ``variants``: ``[(label, Target)]`` autotune variants (an unlabelled single
    pair means nothing is autotuned); ``only``: restrict to these property names."""
    from .properties.checks import properties_for
    from .properties.runner import dtype_name, primary_dtype

    prim = dtype_name(primary_dtype(target))
    items = []
    for prop in properties_for(spec, target):
        if only and prop.name not in only:
            continue
        if prop.all_dtypes and not prop.not_applicable(spec, target):
            items += [Item(prop.name, dtype_name(dt)) for dt in target.dtypes]
        else:
            items.append(Item(prop.name, prim))
    labelled = [(i, lab) for i, (lab, _) in enumerate(variants) if lab]
    if labelled and (not only or "oracle" in only):
        n = min(examples, VARIANT_EXAMPLES) if examples else VARIANT_EXAMPLES
        items += [Item("oracle", prim, variant=lab, variant_index=i, max_examples=n) for i, lab in labelled]
    return items


# ---- running in this process --------------------------------------------------------------------------------------
class _Hung(BaseException):
    """Escapes Hypothesis (which only catches Exception): a timed-out call is not shrunk."""

    def __init__(self, message, example):
        super().__init__(message)
        self.message, self.example = message, example


class TimeUp(BaseException):
    """Raised before an example when the run's deadline has passed (``rnnconf fuzz``)."""


def set_call_timeout(seconds: float) -> None:
    from .properties import calling

    calling.CALL_TIMEOUT_S = float(seconds)
    os.environ["RNNCONF_CALL_TIMEOUT"] = repr(float(seconds))


def run_item(item: Item, spec, target, profile, *, max_examples: int | None = None, variants: dict | None = None,
             on_example=None, deadline: float | None = None, before_example=None) -> Outcome:
    """Run one item in this process.  ``variants``: label -> Target.  ``deadline`` (time.time()): raise
    :class:`TimeUp` before starting an example after it.  ``before_example(example)`` is called before each check."""
    from .properties.calling import TargetRaised, TargetTimeout
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict, describe_example, run_property

    prop = PROPERTIES[item.prop]
    t = target if item.variant is None else (variants or {})[item.variant]
    dtype = dtype_from_name(item.dtype)
    meas: list = []
    count = {"n": 0}

    def check(ctx, ex):
        if deadline is not None and time.time() > deadline:
            raise TimeUp()
        if before_example is not None:
            before_example(ex)
        try:
            r = prop.check(ctx, ex)
        except TargetTimeout as e:
            raise _Hung(str(e), ex) from None
        except (SystemExit, GeneratorExit) as e:  # not Exceptions: calling.py lets them through
            raise TargetRaised(f"{t.id}(…)", e) from None
        count["n"] += 1
        T = (ex.get("dims") or {}).get("T") if isinstance(ex, dict) else None
        ratio = max(r or 0.0, ctx.worst)
        if isinstance(T, int) and T >= 1:
            meas.append({"prop": item.display, "dtype": item.dtype, "T": T, "ratio": float(ratio)})
        return r

    wprop = dataclasses.replace(prop, check=check)
    n = item.max_examples or max_examples
    t0 = time.perf_counter()
    try:
        v = run_property(wprop, spec, t, dtype, profile, max_examples=n, on_example=on_example)
    except _Hung as h:
        v = Verdict(prop.name, t.id, spec.id, item.dtype, "errored", reason=h.message, examples=count["n"],
                    required=prop.required, seconds=time.perf_counter() - t0)
        v.example, v.counterexample = h.example, describe_example(h.example)
    if item.variant is not None:
        v.prop = item.display
    return Outcome(v, meas)


# ---- running in a worker subprocess ------------------------------------------------------------------------------
def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


class Worker:
    """A ``python -m rnnconf.isolate`` child that runs items one at a time; restarted after a crash or a kill."""

    def __init__(self, spec_id: str, target: str, device: str, profile: str, timeout: float,
                 max_examples: int | None = None, name: str | None = None):
        self.spec_id, self.target, self.device, self.profile = spec_id, target, device, profile
        self.name = name
        self.timeout, self.max_examples = timeout, max_examples
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="rnnconf-isolate-")
        self.log_path = os.path.join(self.tmp, "worker.log")
        self._buf = b""

    # lifecycle
    def _start(self):
        r, w = os.pipe()
        env = dict(os.environ)
        env["RNNCONF_CALL_TIMEOUT"] = repr(float(self.timeout))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnconf.isolate", str(w)], stdin=subprocess.PIPE,
                                     stdout=self._log, stderr=self._log, pass_fds=(w,), env=env, cwd=os.getcwd())
        os.close(w)
        self.events = r
        self._buf = b""

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            os.close(self.events)
            self._log.close()
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            os.close(self.events)
            self._log.close()
            self.proc = None

    def _read_event(self, wait: float):
        while b"\n" not in self._buf:
            ready, _, _ = select.select([self.events], [], [], max(0.0, wait))
            if not ready:
                return None
            chunk = os.read(self.events, 65536)
            if not chunk:
                return "eof"
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def run(self, item: Item, on_example=None):
        """Run ``item`` in the child; returns an :class:`Outcome` (crash and kill become errored verdicts)."""
        from .properties.checks import PROPERTIES
        from .properties.runner import Verdict

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        ex_path = os.path.join(self.tmp, f"example-{os.getpid()}-{time.monotonic_ns()}.pt")
        job = {"spec": self.spec_id, "target": self.target, "name": self.name, "device": self.device,
               "profile": self.profile,
               "max_examples": self.max_examples, "item": item.to_json(), "example_path": ex_path}
        log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        call_started, call_desc, examples = None, None, 0
        t0 = time.perf_counter()
        while True:
            wait = 1.0
            if call_started is not None:
                wait = max(0.05, call_started + self.timeout + GRACE_S - time.monotonic())
            ev = self._read_event(wait)
            if ev is None:
                if call_started is not None and time.monotonic() > call_started + self.timeout + GRACE_S:
                    self._kill()
                    reason = (f"target did not return within {self.timeout:g} s and was killed by the parent "
                              f"(a hang outside Python's reach) [{call_desc}]")
                    return self._errored(item, reason, examples, t0, ex_path)
                if self.proc.poll() is None:
                    continue
                ev = "eof"
            if ev == "eof":
                rc = self.proc.wait()
                self._kill()
                if rc < 0:
                    reason = f"target crashed the process (signal {-rc}: {_signame(-rc)})"
                else:
                    reason = f"target ended the process (exit status {rc})"
                if call_desc and call_started is not None:
                    reason += f" during {call_desc}"
                tail = self._log_tail_since(log_start)
                if tail:
                    reason += f"; its last output: {tail}"
                return self._errored(item, reason, examples, t0, ex_path)
            kind = ev.get("ev")
            if kind == "call":
                if ev["phase"] == "start":
                    call_started, call_desc = time.monotonic(), ev.get("desc")
                else:
                    call_started = None
            elif kind == "example":
                examples = ev["n"]
                if on_example:
                    on_example(examples)
            elif kind == "done":
                d = ev["verdict"]
                v = Verdict(**d)
                if ev.get("example_saved"):
                    v.example = torch.load(ex_path, weights_only=False)
                return Outcome(v, ev.get("measurements") or [])
            elif kind == "fatal":  # the child could not even set up (resolving the target, …)
                prop = PROPERTIES[item.prop]
                v = Verdict(item.display, f"{self.spec_id}/{self.name or self.target}", self.spec_id, item.dtype,
                            "errored", reason=f"rnnconf internal error in the isolated worker: {ev['error']}",
                            required=prop.required, internal=True)
                return Outcome(v, [])

    def _log_tail_since(self, start: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                data = f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in data.splitlines() if ln.strip()]
        return " | ".join(lines[-3:])

    def _errored(self, item, reason, examples, t0, ex_path):
        from .properties.checks import PROPERTIES
        from .properties.runner import Verdict, describe_example

        prop = PROPERTIES[item.prop]
        v = Verdict(item.display, f"{self.spec_id}/{self.name or self.target}", self.spec_id, item.dtype, "errored",
                    reason=reason, examples=examples, required=prop.required, seconds=time.perf_counter() - t0)
        cur = ex_path + ".current"
        if os.path.exists(cur):
            try:
                v.example = torch.load(cur, weights_only=False)
                v.counterexample = describe_example(v.example)
            except Exception:  # noqa: BLE001  (a torn write when the crash came mid-save)
                pass
        return Outcome(v, [])


# ---- the child ---------------------------------------------------------------------------------------------------
def _child(fd: int) -> int:
    out = os.fdopen(fd, "wb", buffering=0)

    def send(**ev):
        out.write((json.dumps(ev, default=str) + "\n").encode())

    from .properties import get_profile
    from .properties.calling import describe_call
    from .targets_resolve import resolve, variant_target

    cache = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        item = Item(**job["item"])
        try:
            key = (job["spec"], job["target"], job["device"])
            if key not in cache:
                r = resolve(job["spec"], job["target"], job["device"], name=job.get("name"))
                spec = __import__("rnnconf.registry", fromlist=["get_spec"]).get_spec(job["spec"])
                cache[key] = (spec, r.target, {})
            spec, target, variants = cache[key]
            if item.variant is not None and item.variant not in variants:
                variants[item.variant] = variant_target(job["target"], item.variant)
            profile = get_profile(job["profile"])
            if job["device"] != profile.device:
                profile = dataclasses.replace(profile, device=job["device"])
        except BaseException as e:  # noqa: BLE001
            send(ev="fatal", error=f"{type(e).__name__}: {e}")
            continue

        names = [a.name for a in spec.inputs]

        def watch(t):
            fn = t.fn

            def call(*args, **kwargs):
                desc = describe_call(t, {**dict(zip(names, args)), **kwargs})
                send(ev="call", phase="start", desc=desc)
                try:
                    return fn(*args, **kwargs)
                finally:
                    send(ev="call", phase="end")

            return dataclasses.replace(t, fn=call)

        cur = job["example_path"] + ".current"

        def before(ex):
            torch.save(ex, cur)

        o = run_item(item, spec, watch(target), profile, max_examples=job.get("max_examples"),
                     variants={k: watch(v) for k, v in variants.items()},
                     on_example=lambda n: send(ev="example", n=n), before_example=before)
        v = o.verdict
        saved = False
        if v.example is not None:
            torch.save(v.example, job["example_path"])
            saved = True
        send(ev="done", verdict=v.to_json(), example_saved=saved, measurements=o.measurements)
        try:
            os.unlink(cur)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    # the parent already set TRITON_INTERPRET (inherited) before anything here imports triton
    sys.exit(_child(int(sys.argv[1])))
