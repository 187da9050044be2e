"""Test-session setup: the Triton interpreter on machines without CUDA, and the Hypothesis profile.

TRITON_INTERPRET must be set before triton is first imported, so it happens here, at collection start.
"""
import os

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
