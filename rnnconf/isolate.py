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

import contextlib
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
from hypothesis.reporting import with_reporter

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
    hung: bool = False  # a target call ran past the per-call timeout: the caller calls this target no more
    time_up: bool = False  # the item's time budget (or the run's deadline) ended it before its example count


def dtype_from_name(name: str) -> torch.dtype:
    return getattr(torch, name)


VARIANT_EXAMPLES = 5


def _all_dtypes(target) -> list:
    """Every float dtype (and any other the target claims), so that a report shows what the target does not claim
    as "not claimed" rather than leaving it out."""
    from .spec.targets import FLOAT_DTYPES

    return list(FLOAT_DTYPES) + [d for d in target.dtypes if d not in FLOAT_DTYPES]


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
        if prop.all_dtypes and not prop.not_applicable(spec, target):  # unclaimed dtypes too: "not claimed"
            items += [Item(prop.name, dtype_name(dt)) for dt in _all_dtypes(target)]
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
    """Raised before an example when the item's time budget or the run's deadline has passed; run_item turns it
    into a verdict on the examples that did run."""


def set_call_timeout(seconds: float) -> None:
    from .properties import calling

    calling.CALL_TIMEOUT_S = float(seconds)
    os.environ["RNNCONF_CALL_TIMEOUT"] = repr(float(seconds))


def _quiet(_text) -> None:
    pass


def _defect(v):
    """Verdicts made here (hung, crashed, not run, uncallable) are structural: class ``defect``."""
    if getattr(v, "failure_class", "") is None:
        v.failure_class = "defect"
    return v


def budget_verdict(item: Item, spec, target_id: str, n: int, worst, measured: bool, seconds: float, why: str):
    """The verdict of an item its time budget ended: ``passed`` on the ``n`` examples that ran (the report shows
    how many), ``skipped`` when not one example finished — never a pass on nothing."""
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict

    prop = PROPERTIES[item.prop]
    if n:
        return Verdict(item.display, target_id, spec.id, item.dtype, "passed", reason=f"{why} after {n} examples",
                       examples=n, worst_ratio=worst if measured else None, required=prop.required, seconds=seconds)
    return Verdict(item.display, target_id, spec.id, item.dtype, "skipped", required=prop.required, seconds=seconds,
                   reason=f"not judged: {why} before one example finished (one example costs more than that)")


def run_item(item: Item, spec, target, profile, *, max_examples: int | None = None, variants: dict | None = None,
             on_example=None, deadline: float | None = None, before_example=None, budget: float | None = None,
             on_progress=None, on_failure=None) -> Outcome:
    """Run one item in this process.  ``variants``: label -> Target.  ``budget`` (seconds) / ``deadline``
    (time.time()): no example starts after them — unless an example has failed, so that shrinking finishes — and
    the verdict covers the examples that ran (:func:`budget_verdict`).  ``before_example(example)`` is called before
    each check, ``on_progress({"n", "worst", "measured"})`` after each passing one, ``on_failure(reason)`` at the
    first failing one."""
    from .properties.calling import TargetRaised, TargetTimeout
    from .properties.checks import PROPERTIES
    from .properties.runner import Verdict, describe_example, run_property

    prop = PROPERTIES[item.prop]
    t = target if item.variant is None else (variants or {})[item.variant]
    dtype = dtype_from_name(item.dtype)
    meas: list = []
    count = {"n": 0, "worst": 0.0, "measured": False, "failing": False}
    t0 = time.perf_counter()
    stop = min([x for x in (deadline, time.time() + budget if budget else None) if x is not None], default=None)

    def check(ctx, ex):
        if stop is not None and time.time() > stop and not count["failing"] and (count["n"] or deadline is not None
                                                                                and time.time() > deadline):
            raise TimeUp()  # (the item's first example always runs: a budget never judges nothing by itself)
        if before_example is not None:
            before_example(ex)
        try:
            r = prop.check(ctx, ex)
        except TargetTimeout as e:
            raise _Hung(str(e), ex) from None
        except (SystemExit, GeneratorExit) as e:  # not Exceptions: calling.py lets them through
            if not count["failing"] and on_failure is not None:
                on_failure(f"{t.id}(…) raised {type(e).__name__}")
            count["failing"] = True
            raise TargetRaised(f"{t.id}(…)", e) from None
        except Exception as e:
            if not count["failing"] and on_failure is not None:
                on_failure(str(e))
            count["failing"] = True
            raise
        count["n"] += 1
        T = (ex.get("dims") or {}).get("T") if isinstance(ex, dict) else None
        ratio = max(r or 0.0, ctx.worst)
        count["worst"] = max(count["worst"], ratio)
        count["measured"] = count["measured"] or getattr(ctx, "measured", False) or bool(r)
        if isinstance(T, int) and T >= 1 and (getattr(ctx, "measured", False) or r):
            rec = {"prop": item.display, "dtype": item.dtype, "T": T, "ratio": float(ratio)}
            if getattr(ctx, "worst_bound", None) and ctx.worst >= (r or 0.0):  # |err| and bound at that element
                rec["err"], rec["bound"] = float(ctx.worst_err), float(ctx.worst_bound)  # (the error-vs-bound plot)
            meas.append(rec)
        if on_progress is not None:
            on_progress({"n": count["n"], "worst": count["worst"], "measured": count["measured"]})
        return r

    wprop = dataclasses.replace(prop, check=check)
    n = item.max_examples or max_examples
    hung = time_up = False
    try:
        with (with_reporter(_quiet) if stop is not None else contextlib.nullcontext()):  # no "@seed(…)" advice
            v = run_property(wprop, spec, t, dtype, profile, max_examples=n, on_example=on_example)  # at a time box
    except _Hung as h:
        v = _defect(Verdict(prop.name, t.id, spec.id, item.dtype, "errored", reason=h.message, examples=count["n"],
                            required=prop.required, seconds=time.perf_counter() - t0))
        v.example, v.counterexample = h.example, describe_example(h.example)
        hung = True
    except TimeUp:
        why = ("the time budget of {:g} s ran out".format(budget) if budget and (deadline is None or
                                                                              stop < deadline)
               else "the run's time ran out")
        v = budget_verdict(item, spec, t.id, count["n"], count["worst"], count["measured"],
                           time.perf_counter() - t0, why)
        time_up = True
    if item.variant is not None:
        v.prop = item.display
    return Outcome(v, meas, hung=hung, time_up=time_up)


# ---- running in a worker subprocess ------------------------------------------------------------------------------
def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


class Worker:
    """A ``python -m rnnconf.isolate`` child that runs items one at a time; restarted after a crash or a kill.

    ``kind``: the target kind the parent decided (the smoke call observes Triton launches), passed to the child so
    both judge the same Target.  ``threads``: torch intra-op threads of the child (``None``: torch's default)."""

    def __init__(self, spec_id: str, target: str, device: str, profile: str, timeout: float,
                 max_examples: int | None = None, name: str | None = None, kind: str | None = None,
                 threads: int | None = None):
        self.spec_id, self.target, self.device, self.profile = spec_id, target, device, profile
        self.name, self.kind, self.threads = name, kind, threads
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
        if self.threads:
            env.setdefault("OMP_NUM_THREADS", str(self.threads))
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

    def _send(self, job: dict) -> int:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        return log_start

    def _job(self, **kw) -> dict:
        return {"spec": self.spec_id, "target": self.target, "name": self.name, "device": self.device,
                "profile": self.profile, "kind": self.kind, "max_examples": self.max_examples, **kw}

    def _death(self, log_start: int, call_desc, call_started) -> str:
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
        return reason

    def smoke(self):
        """The smoke call (:mod:`rnnconf.properties.smoke`) in the child; a crash or hang there is its result."""
        from .properties.smoke import SmokeResult

        log_start = self._send(self._job(smoke=True))
        call_started, call_desc = None, None
        while True:
            wait = 1.0 if call_started is None else max(0.05, call_started + self.timeout + GRACE_S
                                                        - time.monotonic())
            ev = self._read_event(wait)
            if ev is None:
                if call_started is not None and time.monotonic() > call_started + self.timeout + GRACE_S:
                    self._kill()
                    return SmokeResult(False, hung=True, reason=f"target did not return within {self.timeout:g} s "
                                                                f"and was killed by the parent [{call_desc}]")
                if self.proc.poll() is None:
                    continue
                ev = "eof"
            if ev == "eof":
                r = SmokeResult(False, reason="smoke call on the smallest valid example: "
                                              + self._death(log_start, call_desc, call_started))
                r.crashed = True
                return r
            if ev.get("ev") == "call":
                call_started, call_desc = (time.monotonic(), ev.get("desc")) if ev["phase"] == "start" \
                    else (None, call_desc)
            elif ev.get("ev") == "smoke":
                return SmokeResult(**ev["result"])
            elif ev.get("ev") == "fatal":
                return SmokeResult(False, reason=f"rnnconf internal error in the isolated worker: {ev['error']}")

    def run(self, item: Item, on_example=None, budget: float | None = None, deadline: float | None = None,
            size_caps: dict | None = None, max_examples: int | None = None):
        """Run ``item`` in the child; returns an :class:`Outcome`.  A crash becomes a ``crashed`` verdict, a call
        past the timeout an ``errored`` one (``hung``).  ``budget`` (seconds) and ``deadline`` (time.time()) stop
        new examples in the child; an example still running at twice the budget (or GRACE_S past the deadline) is
        killed here, and the verdict covers the examples that finished."""
        from .properties.checks import PROPERTIES
        from .properties.runner import Verdict

        ex_path = os.path.join(self.tmp, f"example-{os.getpid()}-{time.monotonic_ns()}.pt")
        job = self._job(item=item.to_json(), example_path=ex_path, budget=budget, deadline=deadline,
                        size_caps=size_caps)
        if max_examples:
            job["max_examples"] = max_examples
        log_start = self._send(job)
        call_started, call_desc = None, None
        seen = {"n": 0, "worst": 0.0, "measured": False}
        failure = None
        t0 = time.perf_counter()
        hard = [x for x in ((time.time() + 2 * budget + GRACE_S) if budget else None,
                            (deadline + GRACE_S) if deadline else None) if x is not None]
        hard = min(hard) if hard else None
        while True:
            wait = 1.0
            if call_started is not None:
                wait = max(0.05, call_started + self.timeout + GRACE_S - time.monotonic())
            if hard is not None:
                wait = max(0.05, min(wait, hard - time.time()))
            ev = self._read_event(wait)
            if ev is None:
                if call_started is not None and time.monotonic() > call_started + self.timeout + GRACE_S:
                    self._kill()
                    reason = (f"target did not return within {self.timeout:g} s and was killed by the parent "
                              f"(a hang outside Python's reach) [{call_desc}]")
                    o = self._ended(item, "errored", reason, seen["n"], t0, ex_path)
                    o.hung = True
                    return o
                if hard is not None and time.time() > hard:
                    self._kill()
                    return self._budget_ended(item, seen, failure, t0, ex_path, budget)
                if self.proc.poll() is None:
                    continue
                ev = "eof"
            if ev == "eof":
                reason = self._death(log_start, call_desc, call_started)
                return self._ended(item, "crashed", reason, seen["n"], t0, ex_path)
            kind = ev.get("ev")
            if kind == "call":
                if ev["phase"] == "start":
                    call_started, call_desc = time.monotonic(), ev.get("desc")
                else:
                    call_started = None
            elif kind == "example":
                seen.update({k: ev[k] for k in ("n", "worst", "measured") if k in ev})
                if on_example:
                    on_example(seen["n"])
            elif kind == "failure":
                failure = ev.get("reason")
            elif kind == "done":
                d = ev["verdict"]
                v = Verdict(**d)
                if ev.get("example_saved"):
                    v.example = torch.load(ex_path, weights_only=False)
                return Outcome(v, ev.get("measurements") or [], hung=bool(ev.get("hung")),
                               time_up=bool(ev.get("time_up")))
            elif kind == "fatal":  # the child could not even set up (resolving the target, …)
                prop = PROPERTIES[item.prop]
                v = Verdict(item.display, self._tid(), self.spec_id, item.dtype,
                            "errored", reason=f"rnnconf internal error in the isolated worker: {ev['error']}",
                            required=prop.required, internal=True)
                return Outcome(_defect(v), [])

    def _tid(self) -> str:
        name = self.name or self.target
        return name if "/" in name else f"{self.spec_id}/{name}"

    def _budget_ended(self, item, seen, failure, t0, ex_path, budget):
        """Killed at the hard end of the item's time: a failure already seen stands (unshrunk), else the examples
        that finished decide (:func:`budget_verdict`)."""
        if failure is not None:
            o = self._ended(item, "failed", f"{failure} (not shrunk: the time budget ran out while shrinking)",
                            seen["n"], t0, ex_path + ".first")
            return o
        why = f"the time budget of {budget:g} s ran out" if budget else "the run's time ran out"
        v = budget_verdict(item, __import__("rnnconf.registry", fromlist=["get_spec"]).get_spec(self.spec_id),
                           self._tid(), seen["n"], seen["worst"], seen["measured"], time.perf_counter() - t0,
                           why + " (an example still running was stopped)")
        return Outcome(v, [], time_up=True)

    def _log_tail_since(self, start: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                data = f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in data.splitlines() if ln.strip()]
        return " | ".join(lines[-3:])

    def _ended(self, item, status, reason, examples, t0, ex_path):
        """A verdict the parent makes (crash, kill): the example that was running is its counterexample."""
        from .properties.checks import PROPERTIES
        from .properties.runner import Verdict, describe_example

        prop = PROPERTIES[item.prop]
        v = Verdict(item.display, self._tid(), self.spec_id, item.dtype, status,
                    reason=reason, examples=examples, required=prop.required, seconds=time.perf_counter() - t0)
        cur = ex_path if ex_path.endswith(".first") else ex_path + ".current"
        if os.path.exists(cur):
            try:
                v.example = torch.load(cur, weights_only=False)
                v.counterexample = describe_example(v.example)
            except Exception:  # noqa: BLE001  (a torn write when the crash came mid-save)
                pass
        return Outcome(_defect(v), [])


# ---- the child ---------------------------------------------------------------------------------------------------
def _watched(t, spec, send):
    """``t`` whose calls report their start and end to the parent (which kills a call past the timeout)."""
    from .properties.calling import describe_call

    names = [a.name for a in spec.inputs]
    fn = t.fn

    def call(*args, **kwargs):
        desc = describe_call(t, {**dict(zip(names, args)), **kwargs})
        send(ev="call", phase="start", desc=desc)
        try:
            return fn(*args, **kwargs)
        finally:
            send(ev="call", phase="end")

    return dataclasses.replace(t, fn=call)


def _child(fd: int) -> int:
    out = os.fdopen(fd, "wb", buffering=0)

    def send(**ev):
        out.write((json.dumps(ev, default=str) + "\n").encode())

    from .properties import get_profile
    from .targets_resolve import resolve, variant_target

    cache = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            key = (job["spec"], job["target"], job["device"], job.get("kind"))
            if key not in cache:
                r = resolve(job["spec"], job["target"], job["device"], name=job.get("name"), observe=False)
                spec = __import__("rnnconf.registry", fromlist=["get_spec"]).get_spec(job["spec"])
                t = r.target if not job.get("kind") else dataclasses.replace(r.target, kind=job["kind"])
                cache[key] = (spec, t, {})
            spec, target, variants = cache[key]
            if job.get("smoke"):
                from .properties.smoke import smoke_call

                send(ev="smoke", result=smoke_call(spec, _watched(target, spec, send), job["device"]).to_json())
                continue
            item = Item(**job["item"])
            if item.variant is not None and item.variant not in variants:
                variants[item.variant] = variant_target(job["target"], item.variant)
            profile = get_profile(job["profile"])
            if job["device"] != profile.device:
                profile = dataclasses.replace(profile, device=job["device"])
            if job.get("size_caps"):
                profile = dataclasses.replace(profile, size_caps=dict(job["size_caps"]))
        except BaseException as e:  # noqa: BLE001
            send(ev="fatal", error=f"{type(e).__name__}: {e}")
            continue

        def watch(t):
            return _watched(t, spec, send)

        cur = job["example_path"] + ".current"

        def before(ex):
            torch.save(ex, cur)

        def failing(reason):
            if os.path.exists(cur):
                shutil.copyfile(cur, job["example_path"] + ".first")
            send(ev="failure", reason=reason)

        o = run_item(item, spec, watch(target), profile, max_examples=job.get("max_examples"),
                     variants={k: watch(v) for k, v in variants.items()}, before_example=before,
                     budget=job.get("budget"), deadline=job.get("deadline"),
                     on_progress=lambda d: send(ev="example", **d), on_failure=failing)
        v = o.verdict
        saved = False
        if v.example is not None:
            torch.save(v.example, job["example_path"])
            saved = True
        send(ev="done", verdict=v.to_json(), example_saved=saved, measurements=o.measurements, hung=o.hung,
             time_up=o.time_up)
        try:
            os.unlink(cur)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    # the parent already set TRITON_INTERPRET (inherited) before anything here imports triton
    sys.exit(_child(int(sys.argv[1])))
