"""Meta-tests of the property registry: a spec's Invariant records and the registered checks are one list.

Every Invariant names exactly one check (the family property of its name, a generic property that concerns the
spec, or an existing test/oracle function); every family property is some spec's Invariant; a spec's properties,
plan and report contain nothing of another family.
"""
import ast
from pathlib import Path

import pytest

from rnnconf.properties import PROPERTIES, properties_for
from rnnconf.properties.registry import Property, register
from rnnconf.registry import all_specs, builtin_forms, get_form, get_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = all_specs()


def _defined(path: str, name: str) -> bool:
    tree = ast.parse((ROOT / path).read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_invariant_names_exactly_one_check(spec):
    names = [i.name for i in spec.invariants]
    assert len(names) == len(set(names)), f"{spec.id}: an invariant name repeats: {names}"
    mine = {p.name for p in properties_for(spec)}
    for inv in spec.invariants:
        by = inv.checked_by
        if by is None:  # the property of this very name judges it
            assert inv.name in PROPERTIES, f"{spec.id}: invariant {inv.name!r} has no registered property"
            assert inv.name in mine, f"{spec.id}: property {inv.name!r} exists but does not concern the spec"
        elif "::" in by:  # a fact of the op itself, checked on the oracle by that function
            path, fn = by.split("::")
            assert (ROOT / path).is_file() and _defined(path, fn), f"{spec.id}: {inv.name} names a missing {by}"
            assert inv.name not in PROPERTIES or not PROPERTIES[inv.name].invariant, \
                f"{spec.id}: {inv.name} is checked elsewhere but a family property of that name exists"
        else:  # a generic property that concerns the spec by its structure
            assert by in PROPERTIES and not PROPERTIES[by].invariant, f"{spec.id}: {inv.name} names {by!r}"
            assert by in mine, f"{spec.id}: {inv.name} is checked by {by}, which does not concern the spec"


def test_every_family_property_is_some_specs_invariant():
    declared = {i.name for s in SPECS for i in s.invariants if i.checked_by is None}
    orphans = [p.name for p in PROPERTIES.values() if p.invariant and p.name not in declared]
    assert not orphans, f"family properties no spec declares (never run): {orphans}"
    # one check serves one family: specs of different families never share a family property's name
    for p in PROPERTIES.values():
        if p.invariant:
            fams = {s.extra.get("family") for s in SPECS if p.not_concerning(s) is None}
            assert len(fams) == 1, f"{p.name} is declared by specs of families {fams}"


@pytest.mark.parametrize("prop,spec_id,why,has", [
    ("state-carry", "aaren", "stateless", "hgrn"),
    ("causality-perturb", "forgetting-attention-acp", "not causal", "forgetting-attention"),
    ("varlen", "forgetting-attention-acp", "no varlen", "forgetting-attention"),
    ("gradients", "forgetting-attention-acp", "gradient", "forgetting-attention"),
    ("channel-independence", "delta-rule", "no independent D", "hgrn"),
    ("head-independence", "hgrn", "no independent H", "delta-rule"),
    ("combine-associative", "hgrn-layer", "diagonal", "mingru")])
def test_generic_properties_concern_specs_by_structure(prop, spec_id, why, has):
    """A generic property a spec's structure rules out is not one of its properties (not an n/a row)."""
    spec = get_spec(spec_id)
    assert why in PROPERTIES[prop].not_concerning(spec)
    assert prop not in {p.name for p in properties_for(spec)}
    assert prop in {p.name for p in properties_for(get_spec(has))}  # a spec with that structure has it


def _other_families(spec):
    own = {i.name for i in spec.invariants}
    return {p.name for p in PROPERTIES.values() if p.invariant and p.name not in own}


def test_hgrn_has_no_other_familys_invariant():
    hgrn = get_spec("hgrn")
    names = {p.name for p in properties_for(hgrn)}
    assert {"tied-gate-bound", "reset-forgets", "combine-associative"} <= names
    assert not names & _other_families(hgrn)
    assert not names & {"aaren-combine", "delta-orthogonal", "acp-eps-zero", "convex-hull", "fox-first-gate-irrelevant"}
    # and one property that does not concern a spec is not applicable on it for that reason, if run by name
    t = get_form("hgrn/sequential")
    assert "not an invariant of spec hgrn" in PROPERTIES["aaren-combine"].not_applicable(hgrn, t)


def test_plan_of_every_builtin_form_holds_only_its_specs_properties():
    from rnnconf.isolate import plan

    for t in builtin_forms():
        spec = get_spec(t.spec_id)
        props = {it.prop for it in plan(spec, t)}
        assert props <= {p.name for p in properties_for(spec)}, t.id
        assert not props & _other_families(spec), t.id


def test_not_applicable_says_which_declaration_excludes_it():
    from rnnconf.spec.targets import Target

    hgrn = get_spec("hgrn")
    t = Target("hgrn", "no-state", lambda *a, **k: None, supports=frozenset({"grad"}))
    why = PROPERTIES["state-carry"].not_applicable(hgrn, t)
    assert "hgrn has state-carry" in why and "initial_state" in why and "final_state" in why
    assert PROPERTIES["varlen"].not_applicable(hgrn, t).endswith("declares no varlen")


def test_a_new_family_registers_without_touching_other_modules():
    """A family property is found by the spec's Invariant name alone; registering a name twice is an error."""
    import dataclasses

    from rnnconf.spec.base import Invariant

    p = PROPERTIES["tied-gate-bound"]
    with pytest.raises(ValueError, match="registered twice"):
        register(p)
    new = Property("zz-test-only", "", p.draw, p.check, invariant=True)
    spec = dataclasses.replace(get_spec("hgrn"), id="zz-family",
                               invariants=(Invariant("zz-test-only", "a test-only fact"),))
    assert new.not_concerning(spec) is None and new.not_concerning(get_spec("hgrn")) is not None
    assert "zz-test-only" not in PROPERTIES  # nothing was registered


def test_list_spec_shows_the_specs_properties_with_their_statements(capsys):
    from rnnconf.cli import main

    assert main(["list", "--spec", "hgrn"]) == 0
    out = capsys.readouterr().out
    hgrn = get_spec("hgrn")
    for p in properties_for(hgrn):
        assert p.name in out
    assert next(i.statement for i in hgrn.invariants if i.name == "reset-forgets")[:40] in out
    assert "aaren-combine" not in out and "delta-orthogonal" not in out


def test_check_refuses_a_property_the_spec_does_not_have(capsys):
    from rnnconf.cli import main

    assert main(["check", "--spec", "hgrn", "--impl", "hgrn/sequential", "--property", "aaren-combine"]) == 2
    err = capsys.readouterr().err
    assert "does not concern spec hgrn" in err and "reset-forgets" in err
