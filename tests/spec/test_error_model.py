"""The error model: unit roundoffs, trait handling, and monotonicity in its ingredients."""
import torch

from rnnconf.spec import get_spec
from rnnconf.spec.errors import ANY_TRAITS, SEQUENTIAL_TRAITS, Traits, unit_roundoff


def test_unit_roundoffs():
    assert unit_roundoff(torch.float32) == 2.0**-24
    assert unit_roundoff(torch.bfloat16) == 2.0**-8
    assert unit_roundoff("tf32") == 2.0**-11


def test_bound_grows_with_steps_magnitude_and_logmass():
    em = get_spec("hgrn").error_model
    one = torch.ones(3, dtype=torch.float64)
    steps = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    b = em.bound(steps, one, one, torch.float32, SEQUENTIAL_TRAITS)
    assert (b[1:] > b[:-1]).all()
    assert (em.bound(steps, 2 * one, one, torch.float32, SEQUENTIAL_TRAITS) > b).all()
    full = em.bound(steps, one, 100 * one, torch.float32, ANY_TRAITS)
    assert (full > em.bound(steps, one, one, torch.float32, ANY_TRAITS)).all()
    # a form that never forms cumulative log sums is not charged for them
    assert torch.equal(em.bound(steps, one, 100 * one, torch.float32, SEQUENTIAL_TRAITS), b)


def test_accumulate_precision_and_tf32():
    em = get_spec("hgrn").error_model
    s, m = torch.tensor([10.0], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    half = em.bound(s, m, None, torch.bfloat16, Traits(cumsum="none"))
    upcast = em.bound(s, m, None, torch.bfloat16, Traits(accumulate="float32", cumsum="none"))
    assert upcast < half  # accumulating in fp32 leaves only the output rounding at bf16 scale
    assert upcast >= unit_roundoff(torch.bfloat16) * m  # …which is never waived
    tf32 = em.bound(s, m, None, torch.float32, Traits(cumsum="none", matmul="tf32"))
    assert tf32 > em.bound(s, m, None, torch.float32, Traits(cumsum="none"))


def test_chunk_depth_is_capped_by_chunk_size():
    em = get_spec("hgrn").error_model
    steps = torch.tensor([100.0], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    c16 = em.bound(steps, one, 50 * one, torch.float32, Traits(cumsum="chunk", chunk_size=16))
    full = em.bound(steps, one, 50 * one, torch.float32, Traits(cumsum="full"))
    assert c16 < full
