"""Running error analysis with reverse mode: first-order forward-error bounds of a computation and of its gradient.

Each value is an :class:`R` — a float64 tensor ``v`` and a bound ``e`` ≥ 0 on the absolute error a floating-point
evaluation of it may carry, in units of the unit roundoff u of the precision it is computed in (Wilkinson's running
error analysis; Higham, *Accuracy and Stability of Numerical Algorithms*, §3.3).  Every operation propagates its
operands' errors through the absolute value of its derivative and adds its own rounding:

    x ± y:  e = e_x + e_y + |v|              x·y:  e = |y|e_x + |x|e_y + |v|       x/y: e = (e_x + |v|e_y)/|y| + |v|
    Σ_{j≤n} a_j b_j (+ c₁ + c₂):  e = Σ(|b_j|e_{a_j} + |a_j|e_{b_j}) + e_c + (n + 2)·Σ|terms|   (any summation order)
    σ(x), tanh(x):  e = |f′(x)|e_x + C_ACT  (absolute: both lie in [−1, 1]; covers 1/(1 + e^{−x}) and 2σ(2x) − 1)
    exp(x):  e = v·(e_x + C_EXP + |x|)       (the |x|: a GPU's exp rounds x·log₂e first, a relative u·|x| in e^x)
    log σ(x):  e = σ(−x)e_x + C_ACT·(1 + |v|)          max(x, y):  e = max(e_x, e_y)

On a recurrence this *is* the first-order propagation through the step Jacobian: an error in s_{t−1} reaches s_t
through |∂s_t/∂s_{t−1}|, so a contractive cell damps old errors and an expanding one amplifies them, and the bound
says which.  Inputs are exact (the oracle judges the values the target received): their e is 0.

Reverse mode: with :func:`tape` active every operation records its vector–Jacobian rule; :func:`backward` then runs
the adjoint recursion *in the same arithmetic* — each adjoint product and each accumulation of contributions is
rounded and charged, and the forward values the adjoint reads carry their own forward errors (a backward that
recomputes or stores activations sees them with those errors).  ``read_rel`` adds a relative error per forward value
read (activations saved rounded to a lower precision, ``Traits.saves``), in the same units.  The result bounds the
gradient error of any evaluation order of the same adjoint formulas, to first order.

Beyond first order (:func:`precision`): with the unit roundoff u of the evaluating precision known, every rule
is made valid for perturbations of any size — products add u·e_x·e_y, a quotient divides by |y| − u·e_y, exp
grows by (e^{u·e} − 1)/u, σ / tanh / log σ take the largest derivative over the input's whole error interval (the
point of [x − u·e, x + u·e] nearest 0 for σ′ and tanh′, its left end for (log σ)′ = σ(−x)), capped by their
range — so a perturbation that leaves an activation's linear regime (a half-precision pre-activation of 10⁴ whose
rounding moves it by 50) is charged what it can do, not the derivative's vanishing value at the exact point.  And a
value whose magnitude exceeds the evaluating precision's largest float (an adjoint of 2·10⁵ in a float16 BPTT) gets
the error NaN: it overflows in any such evaluation, and inf·0 poisons whatever reads it (a NaN bound is read as
"not judged").  :func:`precision` also records the largest perturbation u·e at an activation's input.

``store`` marks where a form may keep its state between steps: in mode ``"store"`` only those count (|v| each,
per unit of the *storage* precision) and every operation is exact — the bound of rounding the state once per step.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

C_ACT = 4.0  # absolute error of σ / tanh / log σ in units of u (exp's ≤ 2 u relative, the add and the divide)
C_EXP = 2.0  # relative error of exp in units of u, besides the argument's |x|

_MODE = ["ops"]  # "ops": every operation rounds; "store": only store() rounds
_TAPE: list | None = None
_U = [0.0]  # the evaluating precision's unit roundoff (0: first order)
_FMAX = [float("inf")]  # its largest finite value
_SEEN = [0.0]  # the largest u·e at an activation's input (see precision())


@contextlib.contextmanager
def precision(u: float, fmax: float = float("inf")):
    """Evaluate beyond first order for unit roundoff ``u`` and overflow threshold ``fmax`` (module docstring).
    Yields a one-element list that holds, on exit, the largest perturbation u·e seen at an activation's input."""
    old = _U[0], _FMAX[0], _SEEN[0]
    _U[0], _FMAX[0], _SEEN[0] = float(u), float(fmax), 0.0
    seen = [0.0]
    try:
        yield seen
    finally:
        seen[0] = _SEEN[0]
        _U[0], _FMAX[0], _SEEN[0] = old


def log_fmax(default: float) -> float:
    """log of the evaluating precision's largest float less 1 (a cap that stays finite there), or ``default``."""
    return default if _FMAX[0] == float("inf") else min(default, math.log(_FMAX[0]) - 1.0)


def _grow(prop: torch.Tensor, n: float = 1.0) -> torch.Tensor:
    """Propagated error plus the rounding of the computed (not the exact) value: (1 + n·u)·prop."""
    return prop * (1 + n * _U[0]) if _U[0] else prop


def _ee(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """u·e_a·e_b (the product rule's second-order term), 0 where either is 0 unless the other is NaN."""
    if not _U[0]:
        return torch.zeros_like(a * b)
    zero = ((a == 0) & ~torch.isnan(b)) | ((b == 0) & ~torch.isnan(a))
    return torch.where(zero, torch.zeros_like(a * b), _U[0] * a * b)


def _note(x: R) -> None:
    if _U[0]:
        d = (_U[0] * x.e).max() if x.e.numel() else None
        if d is not None:
            _SEEN[0] = max(_SEEN[0], float(torch.nan_to_num(d, nan=float("inf"))))


def _interval_pick(a: R, toward_zero: bool) -> torch.Tensor:
    """The point of [x − u·e, x + u·e] where the derivative bound is taken: nearest 0, or the left end."""
    if not _U[0]:
        return a.v
    d = torch.nan_to_num(_U[0] * a.e, nan=float("inf"))
    if toward_zero:
        return torch.sign(a.v) * (a.v.abs() - d).clamp(min=0)
    return a.v - d


def _cap(e: torch.Tensor, width: float) -> torch.Tensor:
    """An activation's deviation cannot exceed its range's width (in units of u)."""
    return torch.minimum(e, torch.full_like(e, width / _U[0])) if _U[0] else e


@dataclass(eq=False)
class R:
    v: torch.Tensor
    e: torch.Tensor
    node: int = -1  # index on the tape (−1: a leaf not differentiated, or no tape)

    def __add__(self, o):
        return add(self, lift(o, self))

    def __radd__(self, o):
        return add(lift(o, self), self)

    def __sub__(self, o):
        return sub(self, lift(o, self))

    def __rsub__(self, o):
        return sub(lift(o, self), self)

    def __mul__(self, o):
        return mul(self, lift(o, self))

    def __rmul__(self, o):
        return mul(lift(o, self), self)

    def __truediv__(self, o):
        return div(self, lift(o, self))

    def __neg__(self):
        return _rec(R(-self.v, self.e), (self,), lambda g: (neg(g),))


def exact(v: torch.Tensor) -> R:
    """An exact value (an input): error 0."""
    v = v.double()
    return R(v, torch.zeros_like(v))


def leaf(v: torch.Tensor) -> R:
    """An exact input whose gradient :func:`backward` returns."""
    r = exact(v)
    if _TAPE is not None:
        _TAPE.append((r, (), None))
        r.node = len(_TAPE) - 1
    return r


def lift(o, like: R) -> R:
    return o if isinstance(o, R) else exact(torch.as_tensor(o, dtype=torch.float64).expand_as(like.v))


def _round(v: torch.Tensor) -> torch.Tensor:
    return v.abs() if _MODE[0] == "ops" else torch.zeros_like(v)


def _k(c: float) -> float:
    return c if _MODE[0] == "ops" else 0.0


def _ovf(out: R) -> R:
    """NaN error where the value overflows the evaluating precision (|v| + u·e ≥ its largest float)."""
    if _FMAX[0] != float("inf"):
        out.e = torch.where(out.v.abs() + _U[0] * out.e >= _FMAX[0], torch.full_like(out.e, float("nan")), out.e)
    return out


def _rec(out: R, ins: tuple, vjp) -> R:
    _ovf(out)
    if _TAPE is not None and any(i.node >= 0 for i in ins):
        _TAPE.append((out, ins, vjp))
        out.node = len(_TAPE) - 1
    return out


def neg(a: R) -> R:
    return R(-a.v, a.e)


def add(a: R, b: R) -> R:
    v = a.v + b.v
    return _rec(R(v, _grow(a.e + b.e) + _round(v)), (a, b), lambda g: (g, g))


def sub(a: R, b: R) -> R:
    v = a.v - b.v
    return _rec(R(v, _grow(a.e + b.e) + _round(v)), (a, b), lambda g: (g, neg(g)))


def _scale(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """|x|·e with 0·e = 0 even for an infinite e (an exact zero factor carries no error; a NaN e stays NaN)."""
    return torch.where((x == 0) & ~torch.isnan(e), torch.zeros_like(e), x.abs() * e)


def mul(a: R, b: R) -> R:
    v = a.v * b.v
    prop = _scale(b.v, a.e) + _scale(a.v, b.e) + _ee(a.e, b.e)
    return _rec(R(v, _grow(prop) + _round(v)), (a, b),
                lambda g: (mul(g, _read(b)), mul(g, _read(a))))


def div(a: R, b: R) -> R:
    v = a.v / b.v
    den = b.v.abs() - _U[0] * b.e  # the perturbed divisor's least magnitude (≤ 0: unbounded)
    num = a.e + _scale(v, b.e)
    e = torch.where(den > 0, num / den.clamp(min=torch.finfo(torch.float64).tiny), torch.full_like(num, float("inf")))
    e = _grow(e) + _round(v)
    return _rec(R(v, e), (a, b), lambda g: (div(g, _read(b)), neg(div(mul(g, R(v, e)), _read(b)))))


def sigmoid(a: R) -> R:
    v = torch.sigmoid(a.v)
    _note(a)
    xc = _interval_pick(a, True)
    d = torch.sigmoid(xc) * torch.sigmoid(-xc)  # σ′, without the cancellation of v(1 − v)
    out = R(v, _cap(_scale(d, a.e), 1.0) + _k(C_ACT))
    return _rec(out, (a,), lambda g: (mul(g, mul(_read(out), sigmoid_c(a))),))


def sigmoid_c(a: R) -> R:
    """σ(−x) = 1 − σ(x), as a value of its own (the backward's 1 − y)."""
    v = torch.sigmoid(-a.v)
    xc = _interval_pick(a, True)
    return _ovf(R(v, _cap(_scale(torch.sigmoid(xc) * torch.sigmoid(-xc), a.e), 1.0) + _k(C_ACT)))


def tanh(a: R) -> R:
    v = torch.tanh(a.v)
    _note(a)
    tc = torch.tanh(_interval_pick(a, True))
    out = R(v, _cap(_scale(1 - tc * tc, a.e), 2.0) + _k(C_ACT))
    return _rec(out, (a,), lambda g: (mul(g, sub(exact(torch.ones_like(v)), mul(_read(out), _read(out)))),))


def exp(a: R) -> R:
    v = torch.exp(a.v)
    _note(a)
    own = _k(C_EXP) + (a.v.abs() if _MODE[0] == "ops" else 0.0)
    if _U[0]:  # e^{x+δ} − e^x = e^x(e^δ − 1), and the rounding of the perturbed value
        d = torch.nan_to_num(_U[0] * a.e, nan=float("inf"))
        out = R(v, _scale(v, torch.expm1(d) / _U[0] + torch.exp(d) * own))
    else:
        out = R(v, v * (a.e + own))
    return _rec(out, (a,), lambda g: (mul(g, _read(out)),))


def logsigmoid(a: R) -> R:
    v = torch.nn.functional.logsigmoid(a.v)
    _note(a)
    out = R(v, _scale(torch.sigmoid(-_interval_pick(a, False)), a.e) + _k(C_ACT) * (1 + v.abs()))
    return _rec(out, (a,), lambda g: (mul(g, sigmoid_c(_read(a))),))


def maximum(a: R, b: R) -> R:
    """max(a, b); the adjoint goes to the branch the exact values select (``a`` on a tie)."""
    pick = a.v >= b.v
    out = R(torch.where(pick, a.v, b.v), torch.maximum(a.e, b.e))
    z = torch.zeros_like(out.v)
    return _rec(out, (a, b), lambda g: (R(torch.where(pick, g.v, z), torch.where(pick, g.e, z)),
                                        R(torch.where(pick, z, g.v), torch.where(pick, z, g.e))))


def clamp_max(a: R, c: float) -> R:
    """min(a, c) for a constant c (exact); the adjoint passes where a < c."""
    keep = a.v < c
    z = torch.zeros_like(a.v)
    return _rec(R(a.v.clamp(max=c), torch.where(keep, a.e, z)), (a,),
                lambda g: (R(torch.where(keep, g.v, z), torch.where(keep, g.e, z)),))


def where(cond: torch.Tensor, a: R, b: R) -> R:
    out = R(torch.where(cond, a.v, b.v), torch.where(cond, a.e, b.e))
    z = torch.zeros_like(out.v)
    return _rec(out, (a, b), lambda g: (R(torch.where(cond, g.v, z), torch.where(cond, g.e, z)),
                                        R(torch.where(cond, z, g.v), torch.where(cond, z, g.e))))


def affine(W: R, c: R, Rm: R, h: R) -> R:
    """W + c + R·h per head: W, c [.., H, D] (c broadcast over the batch), Rm [H, D_out, D_in], h [B, H, D_in] —
    one dot of length D + 2, in any summation order."""
    Rh = torch.einsum("hij,bhj->bhi", Rm.v, h.v)
    v = W.v + c.v + Rh
    mag = W.v.abs() + c.v.abs() + torch.einsum("hij,bhj->bhi", Rm.v.abs(), h.v.abs())
    prop = W.e + c.e + torch.einsum("hij,bhj->bhi", Rm.v.abs(), h.e) + torch.einsum("hij,bhj->bhi", Rm.e, h.v.abs())
    if _U[0]:
        prop = prop + _U[0] * torch.einsum("hij,bhj->bhi", Rm.e, h.e)
    n = h.v.shape[-1] + 2
    out = R(v, _grow(prop, n) + _k(n) * mag)

    def vjp(g):
        hr, Rr = _read(h), _read(Rm)
        gRm = _outer(g, hr)  # Σ_b g_i h_j, length B
        gh = _matvec_t(Rr, g)  # Σ_i R_ij g_i, length D
        gc = _sum_batch(g, c.v.dim() < g.v.dim())
        return g, gc, gRm, gh

    return _rec(out, (W, c, Rm, h), vjp)


def _outer(g: R, h: R) -> R:
    v = torch.einsum("bhi,bhj->hij", g.v, h.v)
    mag = torch.einsum("bhi,bhj->hij", g.v.abs(), h.v.abs())
    e = torch.einsum("bhi,bhj->hij", g.e, h.v.abs()) + torch.einsum("bhi,bhj->hij", g.v.abs(), h.e)
    if _U[0]:
        e = e + _U[0] * torch.einsum("bhi,bhj->hij", g.e, h.e)
    n = g.v.shape[0] + 1
    return _ovf(R(v, _grow(e, n) + _k(n) * mag))


def _matvec_t(Rm: R, g: R) -> R:
    v = torch.einsum("hij,bhi->bhj", Rm.v, g.v)
    mag = torch.einsum("hij,bhi->bhj", Rm.v.abs(), g.v.abs())
    e = torch.einsum("hij,bhi->bhj", Rm.v.abs(), g.e) + torch.einsum("hij,bhi->bhj", Rm.e, g.v.abs())
    if _U[0]:
        e = e + _U[0] * torch.einsum("hij,bhi->bhj", Rm.e, g.e)
    n = g.v.shape[-1] + 1
    return _ovf(R(v, _grow(e, n) + _k(n) * mag))


def _sum_batch(g: R, reduce: bool) -> R:
    if not reduce:
        return g
    n = g.v.shape[0] + 1
    return _ovf(R(g.v.sum(0), _grow(g.e.sum(0), n) + _k(n) * g.v.abs().sum(0)))


def store(a: R) -> R:
    """The state as a form keeps it between steps: free in mode ``"ops"``; in mode ``"store"`` a rounding of |v|."""
    if _MODE[0] != "store":
        return a
    return _rec(R(a.v, a.e + a.v.abs()), (a,), lambda g: (g,))


_READ_REL = [0.0]


def _read(a: R) -> R:
    """A forward value as the backward reads it: its forward error, plus ``read_rel``·|v| (saved rounded)."""
    if not _READ_REL[0]:
        return R(a.v, a.e)
    return R(a.v, a.e + _READ_REL[0] * a.v.abs())


def gauge_free() -> bool:
    """Whether a cell may treat a gauge variable's error as free (sLSTM's stabiliser): without a tape (BPTT needs
    every path).  A stored state's own rounding is still a real change (the cell charges it once, see
    :func:`storing`)."""
    return _TAPE is None


def storing() -> bool:
    """Whether only stored states round (mode ``"store"``)."""
    return _MODE[0] == "store"


@contextlib.contextmanager
def mode(name: str):
    old = _MODE[0]
    _MODE[0] = name
    try:
        yield
    finally:
        _MODE[0] = old


@contextlib.contextmanager
def tape():
    global _TAPE
    old = _TAPE
    _TAPE = []
    try:
        yield _TAPE
    finally:
        _TAPE = old


def backward(tp: list, seeds: list[tuple[R, torch.Tensor]], leaves: list[R], read_rel: float = 0.0) -> list[R | None]:
    """Adjoints of ``leaves`` for L = Σ ⟨seed, out⟩ (seeds exact), by the recorded rules in running-error
    arithmetic.  Contributions to one value are summed in recording order, each sum rounded."""
    adj: dict[int, R] = {}

    def acc(node: int, g: R):
        if node < 0:
            return
        adj[node] = g if node not in adj else add(adj[node], g)

    for out, s in seeds:
        acc(out.node, exact(s))
    _READ_REL[0] = read_rel
    try:
        for i in range(len(tp) - 1, -1, -1):
            out, ins, vjp = tp[i]
            if i not in adj or vjp is None:
                continue
            g = adj[i] if i in adj else None
            for inp, gi in zip(ins, vjp(g)):
                if inp.node >= 0 and gi is not None:
                    acc(inp.node, _match(gi, inp))
    finally:
        _READ_REL[0] = 0.0
    return [adj.get(x.node) for x in leaves]


def _match(g: R, like: R) -> R:
    """Sum a broadcast adjoint back to its operand's shape (e.g. a bias [H, D] used for every batch element)."""
    if g.v.shape == like.v.shape:
        return g
    dims = tuple(range(g.v.dim() - like.v.dim()))
    v, e = g.v.sum(dims) if dims else g.v, g.e.sum(dims) if dims else g.e
    n = 1
    for d in dims:
        n *= g.v.shape[d]
    mag = g.v.abs().sum(dims) if dims else g.v.abs()
    v2, e2, m2 = v, e, mag
    for d, (a, b) in enumerate(zip(v.shape, like.v.shape)):
        if a != b and b == 1:
            v2, e2, m2 = v2.sum(d, keepdim=True), e2.sum(d, keepdim=True), m2.sum(d, keepdim=True)
            n *= a
    return _ovf(R(v2, _grow(e2, n + 1) + _k(n + 1) * m2))
