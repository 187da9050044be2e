"""Shared helpers of the CLI tests (imported by name: pytest puts this directory on sys.path)."""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMPLS = HERE / "impls.py"
REPO = HERE.parent.parent


def impl(name: str) -> str:
    """The TARGET string of a function in tests/cli/impls.py."""
    return f"{IMPLS}:{name}"


def env_for_subprocess(extra_path=None) -> dict:
    """This environment, with the Triton interpreter on a CPU machine and ``extra_path`` (a third party's source
    directory) plus this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env.setdefault("TRITON_INTERPRET", "1")
    env.pop("RNNCONF_EXAMPLES", None)
    env.pop("PYTEST_ADDOPTS", None)
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_subprocess(args, cwd, timeout=300, extra_path=None) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd``."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env_for_subprocess(extra_path),
                          capture_output=True, text=True, timeout=timeout)


def report(dir_) -> dict:
    return json.loads((Path(dir_) / "report.json").read_text())


def statuses(doc) -> dict:
    """``{(prop, dtype): status}`` of a report document."""
    return {(v["prop"], v["dtype"]): v["status"] for v in doc["verdicts"]}
