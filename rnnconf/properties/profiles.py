"""Hypothesis profiles: how many examples, how large, derandomized or not, on which device.

Selected by ``RNNCONF_PROFILE`` (or pytest's ``--rnnconf-profile``); ``RNNCONF_EXAMPLES`` overrides the count.

* ``ci``   — derandomized (same examples every run), bounded sizes and counts: the CPU tier of CI (10 examples per
  property for ``rnnconf check``, 3 for a Triton kernel under the interpreter — ``Profile.interpreted_examples``; the
  test suite 3 in float32, 2 in the other dtypes and for interpreted kernels — ``Profile.suite_examples``).
* ``dev``  — random, a few more examples, the local example database.
* ``gpu``  — CUDA, more examples and longer sequences (``tox -e gpu``).
* ``fuzz`` — long random search with larger shapes (``tox -e fuzz``, ``rnnconf fuzz``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, settings


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    derandomize: bool
    size_caps: dict  # Dim name -> max value drawn
    device: str = "cpu"
    database: bool = False
    # boundary probes (rnnconf.properties.probes): which of a Dim's ``boundaries`` this profile probes — per dim
    # (or "<family>.<dim>") a pair (full, plus): every boundary ≤ full, and the one-past edges 2^k + 1 ≤ plus (the
    # first size that needs one more block/tile/program); a dim not named is probed in full
    probe_caps: dict = field(default_factory=dict)
    probe_budget_s: float = 0.0  # stated CPU-second budget of all probe properties together, per target (0: none)
    # per-kernel example budget: examples per property for a Triton target run under the interpreter (None: as
    # ``max_examples``).  The interpreter costs ~0.1–3 s per launch where a torch form costs milliseconds, so the CPU
    # tier draws fewer examples for kernels (the same examples for every interpreted target);
    # the GPU tier runs them natively at its full count, and the boundary probes are sweeps, not counted here.
    interpreted_examples: int | None = None
    shrink: bool = True  # False: a known failure is confirmed, not shrunk (the third-party tests' findings)
    # the test suite's counts where no count is given — (float32, every other dtype of an all-dtype property, a
    # Triton kernel under the interpreter) — the CPU tier's budget with every family in.  Derandomized, the first
    # example is always the minimal one (every size 1), so 2 is the least that draws a sized one.  ``rnnconf check``
    # keeps ``max_examples`` (it passes its count), and a finding's confirmation and the planted bugs run the full
    # counts (:meth:`confirming`).  Fewer examples of the same derandomized draws, not other ones.
    suite_examples: tuple[int, int, int] | None = None

    def examples_for(self, target, dtype=None) -> int:
        """The example count of one property on ``target`` in ``dtype`` at this profile (``suite_examples``, else
        ``interpreted_examples`` for an interpreted kernel)."""
        import torch

        n, sx = self.max_examples, self.suite_examples
        if sx is not None:
            n = min(n, sx[0] if dtype in (None, torch.float32) else sx[1])
        interp = sx[2] if sx is not None else self.interpreted_examples
        if interp is not None and self.device == "cpu" and target.kind == "triton":
            from ..kernels._backend import interpreter_active

            if interpreter_active():
                return min(n, interp)
        return n

    def confirming(self) -> "Profile":
        """The profile at its full counts and without shrinking: a known failure (a third-party finding, a planted
        bug) is confirmed on the examples it was found on."""
        return replace(self, shrink=False, suite_examples=None)

    def settings(self, max_examples: int | None = None, **kw) -> settings:
        from hypothesis.database import DirectoryBasedExampleDatabase

        db = DirectoryBasedExampleDatabase(os.path.join(".rnnconf", "examples")) if self.database else None
        # no "explain" phase: it re-runs the failing example ~1000 times to annotate a report that the runner never
        # prints (verdicts carry the shrunk example itself), which made every failure cost tens of seconds
        kw.setdefault("phases", [p for p in Phase if p != Phase.explain and (self.shrink or p != Phase.shrink)])
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

    def probe_cap(self, dim: str, family: str | None = None) -> tuple[float, float]:
        """(full, plus) caps of the boundary probes for ``dim`` (see ``probe_caps``); (inf, inf) when not capped."""
        c = self.probe_caps.get(f"{family}.{dim}") if family else None
        c = c if c is not None else self.probe_caps.get(dim)
        return (float("inf"), float("inf")) if c is None else c


# Boundary probes per profile.  The cost of a probe grows with the probed size only (the other dims stay small and
# the oracle evaluates a sample of lanes); only T is expensive: at T = 4097 the mpmath oracle takes ~1 s per lane, and
# the slowest built-in forms (python-loop tiled attention forms, chunk forms, the Triton interpreter) take seconds
# to minutes (forgetting-attention/tiled-7x5: ~3 s at T = 513, ~3 min at 4097).  ci therefore probes T fully up to
# 129 (attention: 65) and then only the one-past edges 2^k + 1 up to 257 (past 256) and, for attention, 513 (keys past
# 512); H, K, V (attention's oracle is quadratic in T and linear in K, V) fully up to 9, 65, 65 then one-past edges;
# dev goes to 1025; gpu and fuzz probe every boundary up to 4097.  B, D, N are probed in full at every profile.
# ``probe_budget_s`` (per target: 3/4 for boundary-probes, 1/4 for gradients-probe) leaves out the probes predicted
# to overrun it, and says so (rnnconf.properties.probes); it stays below twice `rnnconf check`'s default time box of
# 10 s per property, at which an example still running is stopped.  ci 4 s, dev 10 s, gpu and fuzz 15 s.
_CI_PROBES = {"T": (129, 257), "attention.T": (65, 513), "H": (9, 32), "K": (65, 256), "V": (65, 256)}
_DEV_PROBES = {"T": (513, 1025), "attention.T": (257, 1025)}

PROFILES = {
    # N: DeltaProduct's sub-steps per token (T·N sub-steps per sequence)
    # H, K, V: attention specs (quadratic oracles), kept small on the CPU tier
    "ci": Profile("ci", 10, True, {"T": 70, "D": 40, "B": 3, "H": 2, "K": 16, "V": 16,
                                   "attention.T": 40, "attention.B": 2, "matrix.T": 32, "matrix.B": 2,
                                   "N": 3, "ssm.T": 40, "ssm.B": 2, "ssm.G": 2, "ssm.R": 2, "ssm.P": 8,
                                   "ssm.N": 8}, probe_caps=_CI_PROBES, probe_budget_s=4.0,
                 interpreted_examples=3, suite_examples=(3, 2, 2)),
    "dev": Profile("dev", 30, False, {"T": 130, "D": 64, "B": 4, "H": 3, "K": 32, "V": 32, "attention.T": 80,
                                      "matrix.T": 64, "N": 4, "ssm.T": 80, "ssm.G": 2, "ssm.R": 3,
                                      "ssm.P": 16, "ssm.N": 16},
                   database=True, probe_caps=_DEV_PROBES, probe_budget_s=10.0),
    "gpu": Profile("gpu", 60, False, {"T": 520, "D": 96, "B": 4, "H": 4, "K": 64, "V": 64, "ssm.G": 2,
                                      "ssm.R": 4, "ssm.P": 32, "ssm.N": 32}, device="cuda",
                   database=True, probe_budget_s=15.0),
    "fuzz": Profile("fuzz", 100_000, False, {"T": 1100, "D": 130, "B": 5, "H": 4, "K": 64, "V": 64, "ssm.G": 3,
                                        "ssm.R": 4, "ssm.P": 64, "ssm.N": 64},
                    database=True, probe_budget_s=15.0),
}


def get_profile(name: str | None = None) -> Profile:
    name = name or os.environ.get("RNNCONF_PROFILE", "ci")
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    p = PROFILES[name]
    if os.environ.get("RNNCONF_EXAMPLES"):
        n = int(os.environ["RNNCONF_EXAMPLES"])  # an explicit count is every target's
        p = replace(p, max_examples=n, interpreted_examples=None, suite_examples=None)
    if os.environ.get("RNNCONF_DEVICE"):
        p = replace(p, device=os.environ["RNNCONF_DEVICE"])
    return p
