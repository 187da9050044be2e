"""Hypothesis strategies derived from specs and generic property checks for any implementation of a spec."""
from . import invariants  # noqa: F401  (registers the family invariants into PROPERTIES)
from .checks import PROPERTIES, Property, properties_for  # noqa: F401
from .profiles import PROFILES, get_profile  # noqa: F401
from .runner import Verdict, run_property  # noqa: F401
