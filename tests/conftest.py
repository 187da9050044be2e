"""Test-session setup: the Triton interpreter on machines without CUDA, and the Hypothesis profile.

TRITON_INTERPRET must be set before triton is first imported, so it happens here, at collection start.
"""
import os

# One CPU share per pytest-xdist worker.  Every worker's torch (and numpy's BLAS) otherwise starts one thread per
# core, and on CI's 2 cores 2 workers × 2 spinning threads made the tier ~3.5× slower (delta-rule chunk forms: 35 s
# against 9 s; benchmarks/bench_suite.py).  The environment is inherited by the subprocesses the CLI tests start;
# torch may already be imported (by a plugin), so its thread count is set as well.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(_share))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

if os.environ.get("RNNCONF_PROFILE", "ci") != "gpu":
    try:
        import torch

        if not torch.cuda.is_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")
    except ImportError:
        pass


def pytest_addoption(parser):
    group = parser.getgroup("rnnconf-suite")
    group.addoption("--profile", dest="rnnconf_suite_profile", default=None,
                    help="Hypothesis profile for rnnconf's own tests: ci (default), dev, gpu, fuzz "
                         "(same as RNNCONF_PROFILE)")


def pytest_configure(config):
    prof = config.getoption("rnnconf_suite_profile")
    if prof:
        os.environ["RNNCONF_PROFILE"] = prof


def pytest_report_header(config):
    keys = ["RNNCONF_PROFILE", "RNNCONF_EXAMPLES", "RNNCONF_DEVICE", "RNNCONF_ORACLE_DPS", "TRITON_INTERPRET"]
    return "rnnconf env: " + ", ".join(f"{k}={os.environ.get(k, '<unset>')}" for k in keys)
