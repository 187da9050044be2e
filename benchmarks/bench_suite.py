"""Time the CPU tier per family: which family costs what, and what its slowest item is.

    TRITON_INTERPRET=1 python benchmarks/bench_suite.py [-n 2] [--family hgrn ...] [-- extra pytest args]

Collects the tier once (``pytest -m "not slow" --collect-only``), assigns each test id to a family by the spec ids
in it (a test that names no spec — CLI, reports, registry, error model — is "core"), runs each family's ids in one
pytest process with ``-n`` workers and a junit XML, and prints

    family | items | wall s | CPU-item s | slowest item (s)

``wall s`` is what that family's own pytest session took at this -n; ``CPU-item s`` the sum of the items' own
durations.  A session's fixed overhead (start-up, collection, workers; measured on one cheap item) is charged once in
the total, as CI runs the tier in one session.  The projection line adds the planned families at the mean per-family
cost (wall beyond that overhead) of today's spec families, which is how the tier's 12-minute budget is tracked as
families are added.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# order matters: the first family whose pattern matches a test id owns it
FAMILIES = (
    ("pararnn", r"pararnn|paragru|paralstm"),  # before rnn, whose lstm|gru would match
    ("ssm", r"\bssd\b|ssd[-/_]|mamba"),
    ("delta", r"delta|\bdp-|gated_delta|delta_product"),
    ("attention", r"forgetting|acp|aaren|\bfox|_fox"),
    ("mingru", r"mingru|minlstm"),
    ("hgrn", r"hgrn"),
    ("rnn", r"lstm|gru|elman|odyssey|flashrnn|torch_nn|nonlinear"),  # after mingru/minlstm, which it would match
)
PLANNED = 1  # families the open issues add beyond these (test-time memory; the SSM issue's selective-scan
# and LTI specs are counted in ssm)
BUDGET_S = 12 * 60


def family_of(test_id: str) -> str:
    for name, pat in FAMILIES:
        if re.search(pat, test_id):
            return name
    return "core"


def collect(extra) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "-m", "not slow", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *extra], cwd=ROOT, capture_output=True, text=True, env=_env())
    ids = [ln.strip() for ln in out.stdout.splitlines() if "::" in ln]
    if not ids:
        sys.exit(f"bench_suite: collected nothing\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return ids


def _env():
    env = dict(os.environ)
    env.setdefault("TRITON_INTERPRET", "1")
    env.setdefault("RNNCONF_PROFILE", "ci")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_family(ids: list[str], workers: int, extra) -> tuple[float, list[tuple[str, float]], int]:
    with tempfile.TemporaryDirectory() as tmp:
        argsfile = Path(tmp) / "ids.txt"
        argsfile.write_text("\n".join(ids) + "\n")
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
               *(["-n", str(workers)] if workers > 1 else []), *extra, f"@{argsfile}"]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - t0
        times = []
        if xml.exists():
            for tc in ET.parse(xml).getroot().iter("testcase"):
                times.append((f"{tc.get('classname')}::{tc.get('name')}", float(tc.get("time") or 0.0)))
    return wall, times, rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2, help="pytest-xdist workers per family (default 2, as CI)")
    ap.add_argument("--family", action="append", help="only these families (repeatable)")
    ap.add_argument("--times", metavar="JSON", help="also write every item's duration here, per family")
    ap.add_argument("extra", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    ids = collect(args.extra)
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(family_of(i), []).append(i)
    # what every pytest session pays before its first item (start-up, collection, xdist workers): measured on one
    # cheap item and charged once, as CI's single session pays it once, not once per family
    probe_id = min(groups.get("core", ids), key=len)
    overhead, _, _ = run_family([probe_id], args.n, args.extra)
    print(f"  session overhead ({probe_id}): {overhead:.1f} s", file=sys.stderr)
    rows, all_times = [], {}
    for fam in [f for f, _ in FAMILIES] + ["core"]:
        if fam not in groups or (args.family and fam not in args.family):
            continue
        wall, times, rc = run_family(groups[fam], args.n, args.extra)
        all_times[fam] = dict(times)
        slow = max(times, key=lambda p: p[1]) if times else ("—", 0.0)
        rows.append((fam, len(groups[fam]), wall, sum(t for _, t in times), slow, rc))
        print(f"  ran {fam}: {len(groups[fam])} items in {wall:.1f} s (pytest exit {rc})", file=sys.stderr)
    net = {r[0]: max(r[2] - overhead, 0.0) for r in rows}  # net: each family's wall beyond the session overhead
    print(f"| family | items | wall s (-n {args.n}) | net s | CPU-item s | slowest item (s) | pytest exit |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for fam, n, wall, cpu, (sid, st), rc in rows:
        print(f"| {fam} | {n} | {wall:.1f} | {net[fam]:.1f} | {cpu:.1f} | `{sid.split('/')[-1]}` ({st:.1f}) | {rc} |")
    if args.times:
        Path(args.times).write_text(json.dumps(all_times, indent=1))
    total = overhead + sum(net.values())
    fam_walls = [w for f, w in net.items() if f != "core"]
    print(f"\ntotal {total:.1f} s over {sum(r[1] for r in rows)} items (one session: {overhead:.1f} s overhead "
          f"+ each family's wall beyond it)")
    if fam_walls and not args.family:
        per = sum(fam_walls) / len(fam_walls)
        proj = total + PLANNED * per
        print(f"projection with {PLANNED} more families at today's mean {per:.1f} s each: {proj:.0f} s "
              f"({'within' if proj <= BUDGET_S else 'OVER'} the {BUDGET_S // 60}-minute budget)")
    return 0 if all(r[5] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
