"""Hypothesis strategies derived from specs and generic property checks for any implementation of a spec."""
from .checks import PROPERTIES, Property, properties_for  # noqa: F401
from .profiles import PROFILES, get_profile  # noqa: F401
from .registry import load
from .runner import Verdict, run_property  # noqa: F401

load()  # every property module registers itself (generic ones, and one invariants_<family>.py per family)
