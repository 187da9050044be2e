"""Hypothesis profiles: how many examples, how large, derandomized or not, on which device.

Selected by ``RNNCONF_PROFILE`` (or pytest's ``--rnnconf-profile``); ``RNNCONF_EXAMPLES`` overrides the count.

* ``ci``   — derandomized (same examples every run), bounded sizes and counts: the CPU tier of CI.
* ``dev``  — random, a few more examples, the local example database.
* ``gpu``  — CUDA, more examples and longer sequences (``tox -e gpu``).
* ``fuzz`` — long random search with larger shapes (``tox -e fuzz``, ``rnnconf fuzz``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, Phase, settings


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    derandomize: bool
    size_caps: dict  # Dim name -> max value drawn
    device: str = "cpu"
    database: bool = False

    def settings(self, max_examples: int | None = None, **kw) -> settings:
        from hypothesis.database import DirectoryBasedExampleDatabase

        db = DirectoryBasedExampleDatabase(os.path.join(".rnnconf", "examples")) if self.database else None
        # no "explain" phase: it re-runs the failing example ~1000 times to annotate a report that the runner never
        # prints (verdicts carry the shrunk example itself), which made every failure cost tens of seconds
        kw.setdefault("phases", [p for p in Phase if p != Phase.explain])
        return settings(
            max_examples=max_examples or self.max_examples,
            derandomize=self.derandomize,
            deadline=None,
            database=db,
            print_blob=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            **kw,
        )

    def cap(self, dim: str, hi: int, family: str | None = None) -> int:
        """``size_caps`` may hold a family-specific cap ``"<family>.<dim>"`` (quadratic oracles need smaller T)."""
        c = self.size_caps.get(f"{family}.{dim}") if family else None
        return min(hi, c if c is not None else self.size_caps.get(dim, hi))


PROFILES = {
    # N: DeltaProduct's sub-steps per token (T·N sub-steps per sequence)
    # H, K, V: attention specs (quadratic oracles), kept small on the CPU tier
    "ci": Profile("ci", 10, True, {"T": 70, "D": 40, "B": 3, "H": 2, "K": 16, "V": 16,
                                   "attention.T": 40, "attention.B": 2, "matrix.T": 32, "matrix.B": 2,
                                   "N": 3}),
    "dev": Profile("dev", 30, False, {"T": 130, "D": 64, "B": 4, "H": 3, "K": 32, "V": 32, "attention.T": 80,
                                      "matrix.T": 64, "N": 4},
                   database=True),
    "gpu": Profile("gpu", 60, False, {"T": 520, "D": 96, "B": 4, "H": 4, "K": 64, "V": 64}, device="cuda",
                   database=True),
    "fuzz": Profile("fuzz", 100_000, False, {"T": 1100, "D": 130, "B": 5, "H": 4, "K": 64, "V": 64},
                    database=True),
}


def get_profile(name: str | None = None) -> Profile:
    name = name or os.environ.get("RNNCONF_PROFILE", "ci")
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    p = PROFILES[name]
    if os.environ.get("RNNCONF_EXAMPLES"):
        p = replace(p, max_examples=int(os.environ["RNNCONF_EXAMPLES"]))
    if os.environ.get("RNNCONF_DEVICE"):
        p = replace(p, device=os.environ["RNNCONF_DEVICE"])
    return p
