"""ParaRNN's cells (Danieli et al., "ParaRNN: Unlocking Parallel Training of Nonlinear RNNs", arXiv 2510.21450),
solved sequentially or as one system by Newton's method, in pararnn-torch's conventions (PyPI ``pararnn-torch``
0.17.4, ``pararnn/cells/para_gru.py:418``, ``para_lstm.py:202``) with a head axis so the layout matches the
nonlinear cells' (:mod:`rnnconf.spec.nonlinear`).

SIGNATURE (the input projection is precomputed):  ``fn(Wx, a, b, initial_state=None, output_final_state=False)
-> (h, final_state)``; ParaLSTM adds the peepholes ``p`` after ``b``.
  Wx [B, T, G, H, D] gate pre-activations from the input (pararnn's ``W_x(x)`` without its bias);  a [G, H, D]
  diagonal recurrent weights;  b [G, H, D] biases (pararnn's ``W_x.bias``);  p [P = 2, H, D] peepholes (ParaLSTM);
  states [S, B, H, D];  h [B, T, H, D].  Every channel (head, d) is an independent recurrence: the Jacobian
  ∂s_t/∂s_{t−1} is diagonal (ParaGRU) or one 2×2 block per channel (ParaLSTM).

CELLS (gate order along G as pararnn-torch chunks ``W_x``; state tuple along S):
  paragru  (z, r, n; h):  z = σ(Wx_z + a_z⊙h + b_z),  r = σ(Wx_r + a_r⊙h + b_r),
           n = tanh(Wx_n + a_n⊙(r⊙h) + b_n),  h_t = (1 − z)⊙h_{t−1} + z⊙n  (z = 1 takes the candidate).
  paralstm (f, z, o; h, c), coupled input/forget gate with peepholes, the o-peephole on the *new* c_t:
           f = σ(Wx_f + a_f⊙h + p_f⊙c_{t−1} + b_f),  z = tanh(Wx_z + a_z⊙h + b_z),  c_t = f⊙c_{t−1} + (1 − f)⊙z,
           o = σ(Wx_o + a_o⊙h + p_o⊙c_t + b_o),  h_t = o⊙tanh(c_t).
pararnn-torch clamps a and p to ±0.5 (``max_recurrent_norm``) before every step; the spec does not (its adapter
draws them inside that range).

NEWTON (the paper's §2).  Unknowns S = (s_1 … s_T), residual F_t = s_t − f(s_{t−1}, x_t) with s_0 the initial
state (zeros when None).  Initial guess s⁽⁰⁾_t = f(0, x_t), and f(s_0, x_1) at t = 1 (pararnn-torch's
``_init_h_prev``).  One iteration: A_t = ∂f/∂s(s⁽ᵏ⁾_{t−1}, x_t), δ_t = A_t δ_{t−1} − F_t (δ_0 = 0) solved by a
parallel reduction, s⁽ᵏ⁺¹⁾ = s⁽ᵏ⁾ + ωδ.  Facts (the ``newton-*`` properties; exact arithmetic): after k
iterations with ω = 1, s_1 … s_{k+1} equal the sequential values (s_1 is exact at k = 0, and an exact prefix stays
exact: its F is 0, so its δ is 0 and the next position's δ is −F exactly); after T iterations every s_t does; an
f affine in s converges in one iteration; the fixed point is the same for every ω ≠ 0.

ERROR MODEL (running error analysis, :mod:`rnnconf.spec.running_error`, as for the nonlinear cells, with one change:
the error carried in from s_{t−1} is propagated by the *exact* step Jacobian). Per step, the cell is evaluated once
in running-error arithmetic from the exact state (every operation charges its rounding; a pre-activation is a sum of
3 or 4 terms; for ParaGRU the largest over the evaluation orders (1 − z)h + zn and ATen's lerp, h + z(n − h) for z <
½ and n − (n − h)(1 − z) otherwise); that local bound ℓ_t is then carried forward as E_t = |A_t|E_{t−1} + ℓ_t, with
A_t the exact Jacobian at the oracle's trajectory (diagonal, or 2×2 per channel: no cancellation between paths is
lost, so a contractive cell gets a tight bound). Beyond first order for the evaluating precision (the local charge;
the carried error is first order). The bound on s_t is u_acc·E_t + u_out·|s_t| + an underflow floor; a state carried
between calls in the input dtype adds the same propagation of one rounding u_out·|s_τ| (``carry``).
A Newton form (``Traits.solve = "newton"``) evaluates the same cell on its iterate and adds, per step, the rounding
of its update (the residual's subtraction and s + ωδ: 2·u_acc·|s_t|) and what its stopping rule leaves (it stops
once max_t |F_t| ≤ 4·u_acc·max_t |s_t| over the whole call, or after a fixed count: 4·u_acc·max|s| per step), each
propagated by the same |A_t| (to first order a converged iterate's own error does not propagate through the next
Newton step: the iteration map has derivative 0 at its fixed point). The reduction's rounding multiplies δ, which is
at the rounding level once converged: second order. Gradients: the same arithmetic in reverse mode (BPTT, every
adjoint product and accumulation charged, :func:`grad_magnitudes`); a Newton form's adjoint solves λ_t = g_t +
A_{t+1}ᵀλ_{t+1} by a reduction over ⌈log₂ T⌉ levels, charged (2⌈log₂ T⌉ + 2)·u per unit of Λ_t = |g_t| +
|A_{t+1}|ᵀΛ_{t+1} and carried to the parameters through |∂f_t/∂θ|.
"""
from __future__ import annotations

import math

import torch

from . import running_error as re_
from .base import Arg, Dim, Invariant, Output, Spec, pow2_boundaries, register
from .domains import real
from .errors import ErrorModel
from .nonlinear import BIAS, PRE, STATE, working_precision

CELLS = {"paragru": ("z", "r", "n"), "paralstm": ("f", "z", "o")}
STATES = {"paragru": ("h",), "paralstm": ("h", "c")}
S_OF = {k: len(v) for k, v in STATES.items()}

# ±0.5: pararnn's clamp; ±3: an expanding cell (|∂h_t/∂h_{t−1}| > 1 is reachable), where Newton needs more steps
DIAG = real(0.4, edges=(0.0, 0.5, -0.5, 3.0, -3.0), name="diagonal recurrent weight")

PARA_ERROR = ErrorModel(c_step=0.0, c_log=0.0, c_out=1.0, floor="roundings",
                        doc=__doc__.split("ERROR MODEL")[1].strip())


def _dims(cell: str) -> dict:
    d = {
        "B": Dim("B", 1, 8, edges=(1,), doc="batch", boundaries=pow2_boundaries(4, 8)),
        "T": Dim("T", 1, 8192, edges=(1, 2, 3, 5, 17, 31), doc="sequence length",
                 boundaries=pow2_boundaries(16, 4097)),
        "G": Dim("G", 3, 3, doc="gates", boundaries=(3,)),
        "H": Dim("H", 1, 8, edges=(1,), doc="heads", boundaries=pow2_boundaries(4, 8)),
        "D": Dim("D", 1, 128, edges=(1, 2, 16), doc="head dim", boundaries=pow2_boundaries(16, 128)),
        "S": Dim("S", S_OF[cell], S_OF[cell], doc="states", boundaries=(S_OF[cell],)),
    }
    if cell == "paralstm":
        d["P"] = Dim("P", 2, 2, doc="peepholes (p_f on c_{t−1}, p_o on c_t)", boundaries=(2,))
    return d


def _args(cell: str):
    a = [Arg("Wx", ("B", "T", "G", "H", "D"), PRE, doc="gate pre-activations from the input"),
         Arg("a", ("G", "H", "D"), DIAG, kind="param", doc="diagonal recurrent weights"),
         Arg("b", ("G", "H", "D"), BIAS, kind="param", doc="biases")]
    if cell == "paralstm":
        a.append(Arg("p", ("P", "H", "D"), DIAG, kind="param", doc="peepholes p_f (on c_{t−1}), p_o (on c_t)"))
    a.append(Arg("initial_state", ("S", "B", "H", "D"), STATE, kind="state", optional=True,
                 doc="states stacked along S (zeros when None)"))
    return tuple(a)


NEWTON_INVARIANTS = (
    Invariant("newton-prefix", "a Newton target run for k iterations (ω = 1, f(0, x) initial guess) matches the "
              "sequential oracle at s_1 … s_{k+1}, and k + 1 iterations keep that prefix: within the Newton bound"),
    Invariant("newton-termination", "T iterations (ω = 1) match the sequential oracle at every step"),
    Invariant("newton-affine", "a cell affine in its state (ParaGRU with a_z = a_n = 0; GRU with R = 0) is solved "
              "by one iteration at every step"),
    Invariant("newton-damped", "the damped iteration (ω < 1) run to convergence has the same fixed point: the "
              "sequential oracle at every step"),
    Invariant("newton-reduction", "the target's parallel reduction of δ_t = A_t δ_{t−1} + r_t equals the "
              "sequential solve in mpmath, within (2⌈log₂ T⌉ + 2)·u·Σ_s |A_t|…|A_{s+1}||r_s| (diagonal, 2×2 and "
              "dense A)"),
    Invariant("newton-converged", "a Newton target claiming convergence (no fixed iteration count) matches the "
              "sequential oracle on expanding cells too; where it does not, the verdict states the residual "
              "max|F| of what it returned — a fixed 3 iterations is reported as not converged, never passed"),
)


def _spec(cell, title, math_):
    sig = (f"fn(Wx, a, b{', p' if cell == 'paralstm' else ''}, initial_state=None, output_final_state=False)"
           " -> (h, final_state)")
    return register(Spec(
        id=cell, title=title, paper="arXiv:2510.21450", version="1", math=math_, signature=sig,
        dims=_dims(cell), args=_args(cell),
        outputs=(Output("h", ("B", "T", "H", "D"), "h_t, every step"),
                 Output("final_state", ("S", "B", "H", "D"), "every state after the last step", state=True)),
        forms=("sequential", "newton") + (("newton-triton",) if cell == "paragru" else ()), error_model=PARA_ERROR,
        invariants=tuple(i for i in NEWTON_INVARIANTS if i.name != "newton-affine" or cell == "paragru"),
        supports_varlen=False, notes=f"gates ({', '.join(CELLS[cell])}); states ({', '.join(STATES[cell])})",
        extra={"family": "rnn", "reference_form": "sequential", "independent_axes": ("B", "H", "D"),
               "cell": cell, "gates": CELLS[cell], "states": STATES[cell],
               "grad_magnitudes": _grad_fn(cell),
               "affine_zero": {"a": (0, 2)} if cell == "paragru" else None},
    ))


# ---- the cells: torch float64 (for the exact Jacobians) and running-error arithmetic ----------------------------
def step64(cell: str, x, a, b, p, st):
    """One step on float64 tensors: x [.., G, H, D] (batch dims first), a, b [G, H, D], p [2, H, D], st tuple of
    [.., H, D].  The error model's own evaluation (for autograd Jacobians), written from the spec's equations."""
    if cell == "paragru":
        (h,) = st
        z = torch.sigmoid(x[..., 0, :, :] + a[0] * h + b[0])
        r = torch.sigmoid(x[..., 1, :, :] + a[1] * h + b[1])
        n = torch.tanh(x[..., 2, :, :] + a[2] * (r * h) + b[2])
        return ((1 - z) * h + z * n,)
    h, c = st
    f = torch.sigmoid(x[..., 0, :, :] + a[0] * h + p[0] * c + b[0])
    z = torch.tanh(x[..., 1, :, :] + a[1] * h + b[1])
    c2 = f * c + (1 - f) * z
    o = torch.sigmoid(x[..., 2, :, :] + a[2] * h + p[1] * c2 + b[2])
    return (o * torch.tanh(c2), c2)


def jacobian64(cell: str, x, a, b, p, st) -> torch.Tensor:
    """∂s_t/∂s_{t−1} per channel: [.., H, D, S_out, S_in] (exact in float64 via forward-mode autograd: the cell is
    channelwise, so one tangent per state slot gives every channel's column)."""
    S = len(st)
    cols = []
    for k in range(S):
        tang = tuple(torch.ones_like(s) if j == k else torch.zeros_like(s) for j, s in enumerate(st))
        _, out = torch.func.jvp(lambda *s: step64(cell, x, a, b, p, s), tuple(st), tang)
        cols.append(torch.stack(out, -1))  # [.., H, D, S_out]
    return torch.stack(cols, -1)


def _pre(x, bb, terms):
    v = x + bb
    for t in terms:
        v = v + t
    return v


def step_re(cell: str, x, a, b, p, st, formula: str = "lerp-free"):
    """One step in running-error arithmetic: x list per gate of R [B, H, D], a, b, p lists of R [H, D]."""
    if cell == "paragru":
        (h,) = st
        z = re_.sigmoid(_pre(x[0], b[0], [a[0] * h]))
        r = re_.sigmoid(_pre(x[1], b[1], [a[1] * h]))
        n = re_.tanh(_pre(x[2], b[2], [a[2] * (r * h)]))
        one = re_.exact(torch.ones_like(z.v))
        if formula == "lerp":  # pararnn-torch: torch.lerp(h, n, z) = h + z(n − h) (weight < ½) ...
            return (h + z * (n - h),)
        if formula == "lerp-high":  # ... and n − (n − h)(1 − z) (weight ≥ ½: ATen's lerp kernel)
            return (n - (n - h) * (one - z),)
        return ((one - z) * h + z * n,)
    h, c = st
    f = re_.sigmoid(_pre(x[0], b[0], [a[0] * h, p[0] * c]))
    z = re_.tanh(_pre(x[1], b[1], [a[1] * h]))
    one = re_.exact(torch.ones_like(f.v))
    c2 = f * c + (one - f) * z
    o = re_.sigmoid(_pre(x[2], b[2], [a[2] * h, p[1] * c2]))
    return (o * re_.tanh(c2), c2)


def _parts(inputs: dict):
    Wx, a, b = inputs["Wx"].double(), inputs["a"].double(), inputs["b"].double()
    p = inputs["p"].double() if inputs.get("p") is not None else None
    return Wx, a, b, p


def initial(cell: str, Wx: torch.Tensor, initial_state) -> torch.Tensor:
    B, _, _, H, D = Wx.shape
    if initial_state is None:
        return torch.zeros(S_OF[cell], B, H, D, dtype=torch.float64)
    return initial_state.double()


def _local(cell, x, a, b, p, st, u, fmax):
    """ℓ_t [S, B, H, D]: one step's own roundings from the exact state (units of u), beyond first order for
    (u, fmax); the larger of the evaluation orders the spec names."""
    with re_.precision(u, fmax):
        xs = [re_.exact(x[:, g]) for g in range(x.shape[1])]
        aa, bb = [re_.exact(a[g]) for g in range(3)], [re_.exact(b[g]) for g in range(3)]
        pp = [re_.exact(p[k]) for k in range(2)] if p is not None else None
        s = tuple(re_.exact(v) for v in st)
        out = torch.stack([r.e for r in step_re(cell, xs, aa, bb, pp, s)])
        if cell == "paragru":
            for form in ("lerp", "lerp-high"):
                out = torch.maximum(out, torch.stack([r.e for r in step_re(cell, xs, aa, bb, pp, s, form)]))
    return out


def running_bounds(cell: str, inputs: dict, initial_state, exact_states: list, u: float = 0.0,
                   fmax: float = float("inf"), with_max: bool = False) -> tuple:
    """(E, C): per step [S, B, H, D] — E the forward bound (units of u_acc), C the propagation of one rounding
    |s_τ| per step (units of the storage u); ``with_max`` adds M, the propagation of max |s| per step (a Newton
    stopping rule's residual).  ``exact_states``: the oracle's [S, B, H, D] per step."""
    Wx, a, b, p = _parts(inputs)
    s = initial(cell, Wx, initial_state)
    T = Wx.shape[1]
    if not T:
        return [], []
    prev = torch.stack([s] + list(exact_states[:-1])).movedim(1, 0)  # [S, T, B, H, D]
    x = Wx.movedim(1, 0)  # [T, B, G, H, D]: every step at once (the cell is elementwise)
    st = tuple(prev.unbind(0))
    J = jacobian64(cell, x, a, b, p, st).abs()  # [T, B, H, D, S, S]
    loc = _local(cell, x.flatten(0, 1), a, b, p, tuple(v.flatten(0, 1) for v in st), u, fmax)
    loc = loc.unflatten(1, (T, -1))  # [S, T, B, H, D]
    E = torch.zeros_like(s)
    C = torch.zeros_like(s)
    M = torch.zeros_like(s)
    smax = max(float(x.abs().max()) for x in exact_states)
    Es, Cs, Ms = [], [], []
    for t in range(T):
        E = torch.einsum("bhdij,jbhd->ibhd", J[t], E) + loc[:, t]
        C = torch.einsum("bhdij,jbhd->ibhd", J[t], C) + exact_states[t].abs()
        M = torch.einsum("bhdij,jbhd->ibhd", J[t], M) + smax
        Es.append(E)
        Cs.append(C)
        Ms.append(M)
    if with_max:
        return Es, Cs, Ms
    return Es, Cs


def newton_overflow(cell: str, inputs: dict, initial_state, iterations: int, fmax: float) -> torch.Tensor:
    """Where a Newton form's own intermediates leave the working precision: [B, T, H, D], True from the first step
    at which an iterate, a δ, or a partial product A_t⋯A_{t−2^l+1} the reduction forms reaches fmax·2⁻¹⁰, in any of
    the first ``iterations`` iterations (the Newton iteration run in float64, as the form runs it).  An expanding
    cell's exact Newton iterates can be astronomically large before they converge (Π|A_t| over the sequence), so a
    float32 form overflows where the exact answer is small: its values there, and at every later step (which read
    them), are not judged (an infinite bound), as any overflowing value of the running error analysis."""
    Wx, a, b, p = _parts(inputs)
    B, T, G, H, D = Wx.shape
    lim = fmax * 2.0 ** -10
    s0 = initial(cell, Wx, initial_state)
    bad = torch.zeros(B, T, H, D, dtype=torch.bool)
    if not T:
        return bad

    x = Wx.movedim(1, 0)  # [T, B, G, H, D]

    def f(prev):  # prev [T, S, B, H, D]
        return torch.stack(step64(cell, x, a, b, p, tuple(prev.unbind(1))), 1)

    def jac(prev):  # [T, B, H, D, S, S]
        return jacobian64(cell, x, a, b, p, tuple(prev.unbind(1)))

    def flag(v):  # v [T, S, B, H, D] -> [B, T, H, D]
        return ((v.abs() >= lim) | ~torch.isfinite(v)).any(1).permute(1, 0, 2, 3)

    zero = torch.zeros_like(s0)
    V = f(torch.stack([s0] + [zero] * (T - 1)))
    with torch.no_grad():
        for _ in range(iterations):
            bad |= flag(V)
            prev = torch.cat([s0[None], V[:-1]])
            r = f(prev) - V
            A = jac(prev)
            d = 1  # Hillis–Steele, as the forms: r_t += A_t r_{t−d}; A_t ← A_t A_{t−d}
            while d < T:
                r = torch.cat([r[:d], r[d:] + torch.einsum("tbhdij,tjbhd->tibhd", A[d:], r[:-d])])
                A = torch.cat([A[:d], A[d:] @ A[:-d]])
                bad |= ((A.abs() >= lim) | ~torch.isfinite(A)).flatten(-2).any(-1).permute(1, 0, 2, 3)
                d *= 2
            bad |= flag(r)
            V = V + r
            if bool((r == 0).all()):
                break
    return bad.cummax(1).values  # a step reads every earlier one


NEWTON_UPDATE_ROUNDINGS = 2.0  # per step, in units of u_acc·|s_t|: the residual's subtraction and s + ωδ
NEWTON_STOP = 4.0  # the converging forms stop once max|F| ≤ NEWTON_STOP·u·max|s| (charged per step, propagated)


# ---- gradients: BPTT in running-error arithmetic, and the adjoint reduction of a Newton form ------------------
def grad_magnitudes(cell: str, inputs: dict, h0, do, dht, cumsum: bool = False, traits=None, dtype=None) -> dict:
    """(|gradient|, bound in units of u_acc) per differentiable input and the initial state: for ParaGRU the larger
    of the bounds of its two evaluation orders (as for the forward)."""
    out = _grad_magnitudes(cell, inputs, h0, do, dht, traits, dtype, "lerp-free")
    if cell == "paragru":
        for form in ("lerp", "lerp-high"):
            other = _grad_magnitudes(cell, inputs, h0, do, dht, traits, dtype, form)
            out = {k: (v[0], torch.maximum(v[1], other[k][1])) for k, v in out.items()}
    return out


def _grad_fn(cell: str):
    def fn(inputs, h0, do, dht, cumsum=False, traits=None, dtype=None):
        return grad_magnitudes(cell, inputs, h0, do, dht, cumsum, traits, dtype)

    return fn


def _grad_magnitudes(cell, inputs, h0, do, dht, traits, dtype, formula) -> dict:
    from .errors import saved_u

    read_rel = 0.0
    if traits is not None and traits.saves and dtype is not None:
        read_rel = saved_u(dtype, traits) / PARA_ERROR.accumulate_u(dtype, traits)
    u, fmax = working_precision(dtype, traits) if (dtype is not None and traits is not None) else (0.0, math.inf)
    S = S_OF[cell]
    Wx, a, b, p = _parts(inputs)
    B, T, G, H, D = Wx.shape
    s0 = initial(cell, Wx, h0)
    with re_.precision(u, fmax), re_.tape() as tp:
        aa, bb = [re_.leaf(a[g]) for g in range(3)], [re_.leaf(b[g]) for g in range(3)]
        pp = [re_.leaf(p[k]) for k in range(2)] if p is not None else None
        st0 = tuple(re_.leaf(s0[k]) for k in range(S))
        st, xs, hs, traj = st0, [], [], [s0]
        for t in range(T):
            x = [re_.leaf(Wx[:, t, g]) for g in range(G)]
            xs.append(x)
            st = step_re(cell, x, aa, bb, pp, st, formula)
            hs.append(st[0])
            traj.append(torch.stack([v.v for v in st]))
    seeds = [(hs[t], do[:, t].double()) for t in range(T)]
    if dht is not None:
        seeds += [(st[k], dht[k].double()) for k in range(S)]
    leaves = [x for row in xs for x in row] + aa + bb + (pp or []) + list(st0)
    with re_.precision(u, fmax):
        grads = re_.backward(tp, seeds, leaves, read_rel)
    it = iter(grads)

    def take(like):
        g = next(it)
        return (torch.zeros_like(like), torch.zeros_like(like)) if g is None else (
            g.v, torch.nan_to_num(g.e, nan=float("inf")))

    gWx_v = torch.zeros(B, T, G, H, D, dtype=torch.float64)
    gWx_e = torch.zeros_like(gWx_v)
    for t in range(T):
        for g in range(G):
            gWx_v[:, t, g], gWx_e[:, t, g] = take(Wx[:, t, g])
    res = {"Wx": [gWx_v.abs(), gWx_e]}
    for name, arr in (("a", aa), ("b", bb)) + ((("p", pp),) if pp else ()):
        vs, es = zip(*(take(r.v) for r in arr))
        res[name] = [torch.stack(vs).abs(), torch.stack(es)]
    vs, es = zip(*(take(s.v) for s in st0))
    res["initial_state"] = [torch.stack(vs).abs(), torch.stack(es)]
    if traits is not None and getattr(traits, "solve", "sequential") == "newton" and T:
        _adjoint_reduction(cell, Wx, a, b, p, traj, do, dht, res)
        # a channel whose Newton intermediates leave the working precision has a non-finite forward (not judged:
        # newton_overflow); its backward reads those values — every gradient of that channel is not judged either
        over = newton_overflow(cell, inputs, h0, T, fmax).any(1)  # [B, H, D]
        # ... and so does one whose forward bound reaches the working precision's range (an expanding cell's
        # rounding, amplified by Π|A_t| inside every iteration: its forward is not judged there either)
        E, C, M = running_bounds(cell, inputs, h0, [traj[t + 1] for t in range(T)], u, fmax, with_max=True)
        fwd = torch.stack([e + NEWTON_UPDATE_ROUNDINGS * c + NEWTON_STOP * m for e, c, m in zip(E, C, M)])
        over = (over | (~(u * fwd < fmax)).any(0).any(0)) if u else over
        if bool(over.any()):
            inf = float("inf")
            res["Wx"][1] = torch.where(over[:, None, None], inf, res["Wx"][1])
            res["initial_state"][1] = torch.where(over[None], inf, res["initial_state"][1])
            for name in ("a", "b", "p"):
                if name in res:
                    res[name][1] = torch.where(over.any(0)[None], inf, res[name][1])
    return {k: tuple(v) for k, v in res.items()}


def _adjoint_reduction(cell, Wx, a, b, p, traj, do, dht, res) -> None:
    """Adds a Newton form's adjoint reduction: ρ_t = (2⌈log₂ T⌉ + 2)·Λ_t on λ_t, carried to every input through
    |∂f_t/∂(input)| (module docstring)."""
    B, T, G, H, D = Wx.shape
    S = S_OF[cell]
    levels = 2 * math.ceil(math.log2(T)) + 2 if T > 1 else 2
    Js = [jacobian64(cell, Wx[:, t], a, b, p, tuple(traj[t].unbind(0))).abs() for t in range(T)]  # [B,H,D,S,S]
    Lam = [None] * T
    nxt = torch.zeros(S, B, H, D, dtype=torch.float64)
    for t in range(T - 1, -1, -1):
        g = torch.zeros(S, B, H, D, dtype=torch.float64)
        g[0] = do[:, t].double().abs()
        if t == T - 1 and dht is not None:
            g = g + dht.double().abs()
        if t < T - 1:
            g = g + torch.einsum("bhdij,ibhd->jbhd", Js[t + 1], nxt)
        Lam[t] = g
        nxt = g
    rho = [levels * L for L in Lam]
    # through |∂f_t/∂(gate g's pre-activation)|: one tangent per gate (the cell is channelwise)
    for t in range(T):
        st = tuple(traj[t].unbind(0))
        new = tuple(traj[t + 1].unbind(0))
        for g in range(G):
            tang = torch.zeros_like(Wx[:, t])
            tang[:, g] = 1
            _, col = torch.func.jvp(lambda xx: step64(cell, xx, a, b, p, st), (Wx[:, t],), (tang,))
            sens = sum(col[k].abs() * rho[t][k] for k in range(S))  # [B, H, D]
            res["Wx"][1][:, t, g] += sens
            res["b"][1][g] += sens.sum(0)
            res["a"][1][g] += (sens * st[0].abs()).sum(0)
            if p is not None and g in (0, 2):  # p_f reads c_{t−1}, p_o the new c_t
                res["p"][1][0 if g == 0 else 1] += (sens * (st[1] if g == 0 else new[1]).abs()).sum(0)
    res["initial_state"][1] += torch.einsum("bhdij,ibhd->jbhd", Js[0], rho[0])


PARAGRU = _spec("paragru", "ParaGRU (diagonal recurrence; pararnn-torch's convention)",
                "z, r = σ(Wx + a⊙h + b); n = tanh(Wx_n + a_n⊙(r⊙h) + b_n); h_t = (1 − z)⊙h_{t−1} + z⊙n")
PARALSTM = _spec("paralstm", "ParaLSTM (coupled gates, peepholes; pararnn-torch's convention)",
                 "f = σ(Wx_f + a_f⊙h + p_f⊙c + b_f); z = tanh(Wx_z + a_z⊙h + b_z); c_t = f⊙c + (1 − f)⊙z; "
                 "o = σ(Wx_o + a_o⊙h + p_o⊙c_t + b_o); h_t = o⊙tanh(c_t)")
