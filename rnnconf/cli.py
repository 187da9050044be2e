"""``rnnconf`` — conformance runs for any kernel, from the command line.

    rnnconf list
    rnnconf check --spec ID --impl TARGET [--device cpu|cuda] [--profile ci|dev|gpu|fuzz] [--examples N]
                  [--budget SECONDS] [--report DIR] [--no-isolate] [--timeout SECONDS] [--property NAME ...]
                  [--verbose]
    rnnconf check --builtin [--spec ID] [--report DIR] [--jobs N] [...]
    rnnconf fuzz  --spec ID --impl TARGET --time 10m [--report DIR] [--device cpu|cuda] [--timeout SECONDS]
    rnnconf report DIR

TARGET is ``package.module:function``, ``path/to/file.py:function``, a known adapter name (``rnnconf list``) or a
built-in form of the spec (``sequential`` or ``hgrn/sequential``); see :mod:`rnnconf.targets_resolve`.  How one
target is run — smoke call first, a supervised worker by default, time boxes, a hang ending the target's calls — is
:mod:`rnnconf.session`; what is printed is :mod:`rnnconf.progress` (a live line on stderr, results on stdout).

Exit status: 0 — every required property passed (not-applicable ones aside); 1 — at least one required property
failed, errored (the target raised, hung past ``--timeout``, or rnnconf itself errored), crashed (its worker died),
was not run after a hang, or the target was uncallable (``--fail-on`` narrows which failure classes count); 2 —
usage error (unknown spec, no such module or file, missing function, bad option), reported in one line on stderr; a
target module that exists but fails while importing is an uncallable target (exit 1, with a report).

A *skipped* verdict (something that could not be judged here, e.g. bfloat16 under the Triton interpreter) never
counts as passed: it shows in the table and keeps the badge grey ("incomplete"), but it does not by itself make the
exit status 1 — a CPU-only CI machine cannot judge what it cannot run, and failing it for that would make the exit
status useless there.  The badge and the report's summary are where "complete" is decided.

Reports: ``check --impl`` writes one report directory (``--report DIR``, default ``reports/<spec>/<target>``);
``check --builtin`` writes ``DIR/<spec>/<target>/`` for each built-in form and kernel (DIR defaults to ``reports``)
plus ``DIR/index.md`` and ``DIR/index.html``.  Each failed or errored verdict also leaves
``counterexamples/<prop>-<dtype>.pt`` and a pytest reproducer ``repro_<prop>_<dtype>.py`` in its report directory.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from .progress import Out
from .session import STATUS_SHORT  # noqa: F401  (re-exported: older callers import them here)
from .session import short as _short
from .targets_resolve import UsageError  # one-line problems with the command: exit status 2

PROFILE_NAMES = ("ci", "dev", "gpu", "fuzz")
# Time: a one-off check of someone's kernel draws up to CHECK_EXAMPLES examples per property, time-boxed at
# CHECK_BUDGET_S each; --builtin (the main job) keeps the profile's count (10 for ci, derandomized) under a box it
# does not normally reach.  The per-call timeout is far above the slowest built-in call at ci sizes (measured:
# SLOWEST_CI_CALL_S, a Triton kernel under the interpreter), so only a hang reaches it.
CHECK_EXAMPLES = 50
CHECK_BUDGET_S = 15.0
BUILTIN_BUDGET_S = 60.0
DEFAULT_TIMEOUT_S = 300.0
SLOWEST_CI_CALL_S = 31.0  # delta-product/triton-fused forward at B=2 T=32 H=2 K=V=16 N=3, interpreter, loaded 2 cores


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump: the CLI's exit status 2 contract
        raise UsageError(message.replace("\n", " "))


# ---- argument parsing ---------------------------------------------------------------------------------------------
def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {s!r}")
    return v


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|min|s|sec)?", re.I)


def parse_duration(s: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h30m"``, ``"2.5m"``, ``"45"`` (seconds) -> seconds."""
    text = s.strip()
    pos, total = 0, 0.0
    unit = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0, None: 1.0}
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m:
            raise argparse.ArgumentTypeError(f"expected a duration like 10m, 90s or 1h30m, got {s!r}")
        total += float(m.group(1)) * unit[m.group(2).lower() if m.group(2) else None]
        pos = m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not text or total <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration like 10m, 90s or 1h30m, got {s!r}")
    return total


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rnnconf", description="Property-based conformance of recurrent sequence-model kernels against "
                                            "high-precision oracles.",
                epilog="Exit status: 0 all required properties passed, 1 a property failed or errored, 2 usage "
                       "error.  Skipped (not judged) never counts as passed; it shows in the report and badge.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{list,check,fuzz,report}")

    ls = sub.add_parser("list", help="specs and known adapters (with availability), built-in forms")
    ls.add_argument("--spec", help="show this spec's properties with their statements")

    c = sub.add_parser("check", help="run every property against one target (or every built-in one)")
    c.add_argument("--spec", help="spec id (rnnconf list)")
    c.add_argument("--impl", metavar="TARGET", help="package.module:function, path/to/file.py:function, an adapter "
                                                     "name, or a built-in form of the spec")
    c.add_argument("--builtin", action="store_true", help="check every built-in form and kernel (of --spec, if given)")
    _common(c)
    c.add_argument("--profile", choices=PROFILE_NAMES, default="ci", help="Hypothesis profile (default: ci)")
    c.add_argument("--examples", type=_positive_int, metavar="N",
                   help=f"examples per property, not time-boxed unless --budget is given (default: --impl "
                        f"{CHECK_EXAMPLES}, time-boxed; --builtin the profile's, {'10'} for ci)")
    c.add_argument("--budget", type=_positive_float, metavar="SECONDS",
                   help=f"time box per property: no example starts after it, and one still running at twice it is "
                        f"stopped (isolated runs); the report says how many examples ran (default: --impl "
                        f"{CHECK_BUDGET_S:g} s, --builtin {BUILTIN_BUDGET_S:g} s; none with --examples)")
    c.add_argument("--report", metavar="DIR", help="report directory (default reports/<spec>/<target>; with "
                                                  "--builtin the root, default reports)")
    _isolation(c)
    c.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="--builtin: targets checked in parallel, one worker each (default: min(2, CPUs); 1 with "
                        "--no-isolate)")
    c.add_argument("--verbose", "-v", action="store_true", help="a line per property and the full table per target")
    c.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="only this property (repeatable)")

    f = sub.add_parser("fuzz", help="random search until a failure or the time is up")
    f.add_argument("--spec", required=True, help="spec id")
    f.add_argument("--impl", required=True, metavar="TARGET", help="as for check")
    f.add_argument("--time", required=True, type=parse_duration, metavar="DURATION", help="e.g. 10m, 90s, 1h")
    f.add_argument("--report", metavar="DIR", help="report directory (default reports/fuzz/<spec>/<target>)")
    _common(f)
    _isolation(f)
    f.add_argument("--verbose", "-v", action="store_true", help="the full verdict table at the end")
    f.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="only this property (repeatable)")

    r = sub.add_parser("report", help="re-render Markdown/HTML/badge from saved JSON report(s)")
    r.add_argument("dir", metavar="DIR", help="a report directory, its report.json, or a root of report directories")
    return p


def _common(sp):
    sp.add_argument("--device", choices=("cpu", "cuda"), help="where inputs live (default: the profile's, cpu)")
    sp.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                    help=f"per-call timeout: a call past it is a hang (errored), and the target is not called again "
                         f"(default RNNCONF_CALL_TIMEOUT or {DEFAULT_TIMEOUT_S:g} s; the slowest built-in call at ci "
                         f"sizes takes {SLOWEST_CI_CALL_S:g} s)")
    sp.add_argument("--dtypes", type=_claim_arg("dtypes"), metavar="LIST",
                    help="the dtypes the target claims, e.g. float32,float16 (others are not judged: 'not claimed')")
    sp.add_argument("--traits", type=_claim_arg("traits"), metavar="K=V,...",
                    help="error-model traits the target declares, e.g. accumulate=float32,cumsum=chunk,chunk_size=64,"
                         "matmul=tf32,saves=float16 (undeclared ones: ANY_TRAITS')")
    sp.add_argument("--fail-on", type=_fail_on_arg, metavar="CLASSES", dest="fail_on",
                    help="failure classes that make the exit status 1 (default: all): defect,dtype-contract,precision")


def _isolation(sp):
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run in this process (faster start; a segfault then ends the run without a report)")
    g.add_argument("--isolate", dest="isolate", action="store_true",
                   help="the default: properties run in a supervised worker process, so a crash is a 'crashed' "
                        "verdict and a hang in C code is killed")
    sp.set_defaults(isolate=True)


def _claim_arg(key):
    def parse(s: str):
        from .declare import DeclarationError, claims_from

        try:
            claims_from({key: s}, "command line")
        except DeclarationError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return s

    parse.__name__ = key  # argparse names the option's type in its message
    return parse


FAILURE_CLASSES = ("defect", "dtype-contract", "precision")


def _fail_on_arg(s: str) -> frozenset:
    got = [c.strip() for c in s.split(",") if c.strip()]
    bad = [c for c in got if c not in FAILURE_CLASSES]
    if not got or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(FAILURE_CLASSES)}, got {s!r}")
    return frozenset(got)


def _claims(args):
    """The command line's claims (``--dtypes``, ``--traits``) for :func:`rnnconf.targets_resolve.resolve`."""
    from .targets_resolve import cli_claims

    return cli_claims(getattr(args, "dtypes", None), getattr(args, "traits", None))


# ---- environment ---------------------------------------------------------------------------------------------------
def _setup_device(args, profile_name: str) -> str:
    """Decide the device and set TRITON_INTERPRET before anything imports triton."""
    device = getattr(args, "device", None) or ("cuda" if profile_name == "gpu" else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    else:
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda (or --profile gpu) but no CUDA device is available")
    return device


def _timeout(args) -> float:
    from .isolate import set_call_timeout

    t = args.timeout if getattr(args, "timeout", None) else float(os.environ.get("RNNCONF_CALL_TIMEOUT")
                                                                   or DEFAULT_TIMEOUT_S)
    set_call_timeout(t)
    return t


# ---- commands -------------------------------------------------------------------------------------------------------
def cmd_list(args, out: Out) -> int:
    if not _cuda_quick():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from .registry import all_specs, builtin_forms

    if getattr(args, "spec", None):
        return _list_spec(args.spec, out)
    out.line("Specs:")
    for s in all_specs():
        out.line(f"  {s.id:<12} {s.paper:<20} {s.title}")
        out.line(f"  {'':<12} {s.signature}")
    out.line()
    out.line("Built-in forms and kernels (--impl NAME, or check --builtin):")
    for t in builtin_forms():
        out.line(f"  {t.id:<24} {t.kind:<7} {_short(t.doc, 80)}")
    out.line()
    out.line("Adapters (--impl NAME):")
    try:
        from .adapters import list_adapters

        ads = list_adapters()
    except ImportError:
        ads = []
    if not ads:
        out.line("  (none)")
    for a in ads:
        avail = "available" if a["available"] else f"unavailable: {a['reason']}"
        out.line(f"  {a['name']:<28} {a['spec']:<10} {avail}")
        out.line(f"  {'':<28} {_short(a['doc'], 100)}")
    return 0


def _list_spec(spec_id: str, out: Out) -> int:
    """The properties of one spec (what every report of it shows), each with its statement; then the spec's
    invariants that are checked on the oracle rather than on targets."""
    import textwrap

    from .properties import properties_for
    from .targets_resolve import get_spec_or_usage

    spec = get_spec_or_usage(spec_id)
    props = properties_for(spec)
    out.line(f"{spec.id}: {spec.title} ({spec.paper})")
    out.line(f"  {spec.signature}")
    out.line(f"Properties ({len(props)}; generic by the spec's structure, then its invariants):")
    for p in props:
        need = f" [needs {', '.join(sorted(p.requires))}]" if p.requires else ""
        text = ("invariant: " if p.invariant else "") + p.statement(spec) + need
        for i, ln in enumerate(textwrap.wrap(text, 90) or [""]):
            out.line(f"  {p.name if i == 0 else '':<28} {ln}")
    elsewhere = [i for i in spec.invariants if i.checked_by is not None]
    if elsewhere:
        out.line("Invariants checked elsewhere (on the oracle, or by a generic property):")
        for inv in elsewhere:
            for i, ln in enumerate(textwrap.wrap(f"{inv.statement} — {inv.checked_by}", 90)):
                out.line(f"  {inv.name if i == 0 else '':<28} {ln}")
    return 0


def _cuda_quick() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def _profile(name: str, device: str):
    import dataclasses

    from .properties import get_profile

    p = get_profile(name)
    return p if p.device == device else dataclasses.replace(p, device=device)


def _check_properties(names, spec=None):
    if not names:
        return None
    from .properties.checks import PROPERTIES, properties_for

    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise UsageError(f"unknown property {unknown[0]!r}; known: {', '.join(PROPERTIES)}")
    if spec is not None and (alien := [n for n in names if PROPERTIES[n].not_concerning(spec)]):
        raise UsageError(f"property {alien[0]!r} does not concern spec {spec.id} "
                         f"({PROPERTIES[alien[0]].not_concerning(spec)}); its properties: "
                         f"{', '.join(p.name for p in properties_for(spec))} (rnnconf list --spec {spec.id})")
    return list(names)


def _command_line(argv) -> str:
    import shlex

    return "rnnconf " + " ".join(shlex.quote(a) for a in argv)


def _budget(args, default: float) -> float | None:
    """Seconds per property: ``--budget``; with ``--examples`` alone the count is pinned, not time-boxed."""
    if getattr(args, "budget", None):
        return args.budget
    return None if args.examples else default


def _header(out, what: str, resolved, n_items: int, profile, device, isolate, timeout, examples, budget):
    t = resolved.target
    box = f"time box {budget:g} s per property" if budget else "not time-boxed"
    out.line(f"rnnconf {what}: {t.id} ({t.kind}; {resolved.origin}) — {n_items} items, profile {profile.name}, "
             f"device {device}, {'isolated' if isolate else 'in this process'}, per-call timeout {timeout:g} s, "
             f"≤ {examples} examples per property ({box})")


def cmd_check(args, out: Out, argv) -> int:
    if args.builtin:
        if args.impl:
            raise UsageError("--builtin and --impl are mutually exclusive")
        return cmd_check_builtin(args, out, argv)
    if not args.spec or not args.impl:
        raise UsageError("check needs --spec ID and --impl TARGET (or --builtin)")
    device = _setup_device(args, args.profile)
    timeout = _timeout(args)
    from .isolate import plan
    from .progress import Live
    from .reproducer import safe_name
    from .session import finish_target, print_summary, run_target, target_line
    from .targets_resolve import autotune_variants, get_spec_or_usage, resolve

    spec = get_spec_or_usage(args.spec)
    resolved = resolve(spec.id, args.impl, device, claims=_claims(args), observe=False)
    only = _check_properties(args.properties, spec)
    variants = []
    if resolved.origin == "adapter":
        try:
            variants = autotune_variants(args.impl)
        except Exception as e:  # noqa: BLE001
            out.line(f"  (autotune variants unavailable: {type(e).__name__}: {e})")
    profile = _profile(args.profile, device)
    examples = args.examples or CHECK_EXAMPLES
    budget = _budget(args, CHECK_BUDGET_S)
    items = plan(spec, resolved.target, variants, only=only, examples=args.examples)
    report_dir = Path(args.report) if args.report else Path("reports") / spec.id / safe_name(resolved.target.name)
    _header(out, "check", resolved, len(items), profile, device, args.isolate, timeout, examples, budget)
    for n in resolved.notes:
        out.line(f"  note: {n}")
    t0 = time.perf_counter()
    with Live(len(items), 1) as live:
        slot = live.slot(1, resolved.target.id, len(items))
        run = run_target(spec, resolved, items=items, profile=profile, device=device, examples=examples,
                         isolate=args.isolate, timeout=timeout, out=out, variants=variants, budget=budget, slot=slot,
                         verbose=args.verbose)
        slot.close()
    doc, code, paths = finish_target(spec, run, report_dir=report_dir, profile=profile, device=device,
                                     timeout=timeout, isolate=args.isolate, command=_command_line(argv), out=out,
                                     target_arg=args.impl, verbose=args.verbose, fail_on=getattr(args, "fail_on", None),
                                     extra={"budget_s": budget, "max_examples": examples})
    if doc is not None:
        out.line(target_line(doc, paths["html"]))
        print_summary([(doc, report_dir)], out, time.perf_counter() - t0)
        out.line(f"report: {paths['html']}")
    if not args.report:  # the default layout reports/<spec>/<target>: keep reports/index.* current
        write_index(Path("reports"))
    return code


def cmd_check_builtin(args, out: Out, argv) -> int:
    device = _setup_device(args, args.profile)
    timeout = _timeout(args)
    from concurrent.futures import ThreadPoolExecutor

    from .isolate import plan
    from .progress import Live
    from .registry import builtin_forms
    from .reproducer import safe_name
    from .session import finish_target, print_summary, run_target, target_line
    from .targets_resolve import Resolved, get_spec_or_usage

    if args.spec:
        get_spec_or_usage(args.spec)
    if _claims(args) is not None:
        raise UsageError("--dtypes/--traits state one --impl target's claims; built-in forms declare their own")
    only = _check_properties(args.properties)
    profile = _profile(args.profile, device)
    root = Path(args.report or "reports")
    targets = builtin_forms(args.spec)
    if not targets:
        raise UsageError(f"no built-in forms for spec {args.spec!r}")
    examples = args.examples or profile.max_examples
    budget = _budget(args, BUILTIN_BUDGET_S)
    jobs = 1 if not args.isolate else (args.jobs or max(1, min(2, os.cpu_count() or 1)))
    plans = []
    for t in targets:
        spec = get_spec_or_usage(t.spec_id)
        plans.append((spec, Resolved(t, "builtin", t.id), plan(spec, t, (), only=only, examples=args.examples)))
    total = sum(len(p[2]) for p in plans)
    box = f"time box {budget:g} s per property" if budget else "not time-boxed"
    out.line(f"rnnconf check --builtin: {len(targets)} targets, {total} items, profile {profile.name}, device "
             f"{device}, {'isolated' if args.isolate else 'in this process'}, {jobs} in parallel, per-call timeout "
             f"{timeout:g} s, ≤ {examples} examples per property ({box})")
    t_all = time.perf_counter()
    entries, codes = [], []
    done = {"n": 0}

    def one(k, spec, resolved, items):
        t = resolved.target
        rd = root / spec.id / safe_name(t.name)
        slot = live.slot(k, t.id, len(items))
        try:
            run = run_target(spec, resolved, items=items, profile=profile, device=device, examples=examples,
                             isolate=args.isolate, timeout=timeout, out=out, budget=budget, slot=slot,
                             verbose=args.verbose, threads=1 if jobs > 1 else None)
        finally:
            slot.close()
        doc, c, paths = finish_target(spec, run, report_dir=rd, profile=profile, device=device, timeout=timeout,
                                      isolate=args.isolate, command=_command_line(argv), out=out, target_arg=t.id,
                                      verbose=args.verbose, fail_on=getattr(args, "fail_on", None),
                                      extra={"budget_s": budget, "max_examples": examples})
        codes.append(c)
        done["n"] += 1
        live.target_done(done["n"])
        if doc is not None:
            entries.append((k, doc, rd))
            out.line(target_line(doc, paths["html"]))

    with Live(total, len(targets)) as live:
        if jobs == 1:
            for k, (spec, resolved, items) in enumerate(plans, 1):
                one(k, spec, resolved, items)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for f in [pool.submit(one, k, *pl) for k, pl in enumerate(plans, 1)]:
                    f.result()
    paths = write_index(root)
    entries.sort(key=lambda e: e[0])
    print_summary([(doc, rd) for _, doc, rd in entries], out, time.perf_counter() - t_all)
    out.line(f"index: {paths['html']}")
    return max(codes, default=0)


def cmd_fuzz(args, out: Out, argv) -> int:
    device = _setup_device(args, "fuzz")
    timeout = _timeout(args)
    from .fuzz import fuzz
    from .reproducer import safe_name
    from .targets_resolve import get_spec_or_usage, resolve

    spec = get_spec_or_usage(args.spec)
    resolved = resolve(spec.id, args.impl, device, claims=_claims(args), observe=False)
    only = _check_properties(args.properties)
    profile = _profile("fuzz", device)
    report_dir = Path(args.report) if args.report else (Path("reports") / "fuzz" / spec.id
                                                        / safe_name(resolved.target.name))
    return fuzz(spec, resolved, seconds=args.time, profile=profile, device=device, timeout=timeout,
                report_dir=report_dir, only=only, out=out, command=_command_line(argv), target_arg=args.impl,
                isolate=args.isolate, verbose=args.verbose, fail_on=getattr(args, "fail_on", None))


def cmd_report(args, out: Out) -> int:
    from .reports import ReportValidationError, rerender

    p = Path(args.dir)
    if not p.exists():
        raise UsageError(f"no such file or directory: {args.dir}")
    targets = []
    if p.is_file() or (p / "report.json").is_file():
        targets = [p]
    else:
        targets = sorted(q.parent for q in p.glob("*/*/report.json"))
        if not targets:
            raise UsageError(f"no report.json in {args.dir} (nor in {args.dir}/<spec>/<target>/)")
    for t in targets:
        try:
            paths = rerender(t)
        except (ReportValidationError, ValueError) as e:
            raise UsageError(f"{t}: {_short(e, 300)}") from None
        out.line(f"re-rendered {paths['json']} -> {', '.join(paths[k].name for k in ('md', 'html', 'badge'))}")
    if len(targets) > 1 or not (p.is_file() or (p / "report.json").is_file()):
        idx = write_index(p)
        out.line(f"index: {idx['html']}")
    return 0


# ---- the index of a report root (rnnconf.reports.index; kept importable from here) ---------------------------
from .reports.index import write_index  # noqa: E402


# ---- entry point ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Out()
    try:
        args = build_parser().parse_args(argv)
        if args.cmd == "list":
            return cmd_list(args, out)
        if args.cmd == "check":
            return cmd_check(args, out, argv)
        if args.cmd == "fuzz":
            return cmd_fuzz(args, out, argv)
        if args.cmd == "report":
            return cmd_report(args, out)
        raise UsageError(f"unknown command {args.cmd!r}")
    except UsageError as e:
        sys.stderr.write(f"rnnconf: error: {e}\n")
        sys.stderr.flush()
        return 2
    except KeyboardInterrupt:
        out.line()
        sys.stderr.write("rnnconf: interrupted\n")
        return 130


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
