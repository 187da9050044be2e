"""Adapters for pararnn-torch (PyPI ``pararnn-torch`` 0.17.4, a reimplementation of ParaRNN, arXiv 2510.21450)
onto the specs ``paragru`` and ``paralstm`` (:mod:`rnnconf.spec.pararnn`, whose conventions are this library's).
Its eager CPU paths only: ``sequential_apply`` and ``newton_apply`` (its Triton scans and fused kernels need CUDA:
``scan_backend='triton'`` raises ``scan_diag_triton requires CUDA`` on a CPU).

Mapping (read from the source; paths relative to ``pararnn/``):
* the cell is ``ParaGRU(d_in=3·H·D, d_h=H·D, mix='diag', max_recurrent_norm=None)`` / ``ParaLSTM(...)`` — the
  ±0.5 clamp of the recurrent vectors (``cells/para_gru.py:241``, ``para_lstm.py:117``) off, so the weights given are
  the weights used; channels (h, d) flattened to d_h = H·D (every channel is independent);
* ``W_x.weight`` = the identity of size 3·d_h, ``W_x.bias`` = b packed gate-major ([z | r | n], [f | z | o],
  ``para_gru.py:425``, ``para_lstm.py:208``), the input x = Wx packed the same way: ``W_x(x)`` is Wx + b exactly;
* ``a_z, a_r, a_n`` = a[g] flattened; ParaLSTM's ``a_f, a_z, a_o`` and peepholes ``c_f, c_o`` = p[0], p[1];
* states: h0 ``(B, d_h)``; ParaLSTM's ``(B, 2, d_h)`` with slot 0 = c, slot 1 = h (``layout.py:33``), the reverse
  of the spec's (h, c) — converted both ways; the outputs H ``(B, T, d_h)`` / ``(B, T, 2, d_h)``; the final state is
  H's last step.
The parameters go in by ``torch.func.functional_call``, so gradients are pararnn's own (BPTT for sequential_apply;
for newton_apply its implicit-function adjoint, ``solvers/newton/__init__.py:141``, with the closed-form cell VJPs
``kernels/vjp_gru.py:107`` / ``vjp_lstm.py:142``).

Targets: ``pararnn:sequential:<cell>``; ``pararnn:newton:<cell>`` with the library's default ``NewtonConfig()``
(max_iters = 3, early stop once max|F| < 1e-5, ``NewtonDivergenceError`` above 1 — a fixed count of 3, declared);
``pararnn:newton-exact:<cell>`` with ``NewtonConfig(max_iters=T, residual_atol=None, residual_fail=None)`` (T
iterations: exact in exact arithmetic, claims convergence).  Both Newton targets take rnnconf's ``newton_its`` /
``omega`` keywords (then ``max_iters`` = that count, no early stop, no divergence check) and declare pararnn's
eager scans (``solvers/scan.py``: ``scan_diag``, ``scan_block2``, ``scan_dense``) as their reduction.
Traits: the eager paths compute float32 and float64 in their own dtype, half inputs' cell in the input dtype with the
scan and update in float32 (``solvers/scan.py:243``, ``newton/__init__.py:535``): ``accumulate=None``.
"""
from __future__ import annotations

import importlib.metadata

import torch

from ..spec.errors import Traits
from ..spec.targets import FLOAT_DTYPES, Target
from . import Adapter, register_adapter

LIBRARY, DISTRIBUTION = "pararnn", "pararnn-torch"
CELLS = {"paragru": "ParaGRU", "paralstm": "ParaLSTM"}
_FEATURES = frozenset({"initial_state", "final_state", "grad"})


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _params(cell, a, b, p, dh):
    flat = [a[g].reshape(dh) for g in range(3)]
    names = ("a_z", "a_r", "a_n") if cell == "paragru" else ("a_f", "a_z", "a_o")
    out = dict(zip(names, flat))
    if cell == "paralstm":
        out["c_f"], out["c_o"] = p[0].reshape(dh), p[1].reshape(dh)
    out["W_x.weight"] = torch.eye(3 * dh, dtype=a.dtype, device=a.device)
    out["W_x.bias"] = b.reshape(3 * dh)
    return out


def _api(cell: str, mode: str):
    from pararnn.solvers import NewtonConfig, newton_apply, sequential_apply

    def run(Wx, a, b, p, initial_state, output_final_state, newton_its, omega):
        B, T, G, H, D = Wx.shape
        dh = H * D
        x = Wx.reshape(B, T, 3 * dh)
        h0 = None
        if initial_state is not None:
            s = initial_state.reshape(initial_state.shape[0], B, dh)
            h0 = s[0] if cell == "paragru" else torch.stack([s[1], s[0]], 1)  # pararnn's (c, h)
        if mode == "sequential":
            def fwd(m, xx, hh):
                return sequential_apply(m, xx, hh)
        else:
            if newton_its is not None:
                cfg = NewtonConfig(max_iters=newton_its, omega=omega, residual_atol=None, residual_fail=None)
            elif mode == "newton-exact":
                cfg = NewtonConfig(max_iters=max(T, 1), omega=omega, residual_atol=None, residual_fail=None)
            else:
                cfg = NewtonConfig(omega=omega)
            def fwd(m, xx, hh, cfg=cfg):
                return newton_apply(m, xx, cfg, h0=hh)
        if T == 0:
            Hs = Wx.new_zeros((B, 0, dh) if cell == "paragru" else (B, 0, 2, dh))
        else:
            Hs = _call(cell, dh, Wx.dtype, _params(cell, a, b, p, dh), fwd, x, h0)
        if cell == "paragru":
            h = Hs.reshape(B, T, H, D)
            fin = (Hs[:, -1] if T else (h0 if h0 is not None else Wx.new_zeros(B, dh)))[None]
        else:
            h = Hs[:, :, 1].reshape(B, T, H, D)
            last = Hs[:, -1] if T else (h0 if h0 is not None else Wx.new_zeros(B, 2, dh))
            fin = torch.stack([last[:, 1], last[:, 0]])
        return h, (fin.reshape(-1, B, H, D) if output_final_state else None)

    if cell == "paralstm":
        def fn(Wx, a, b, p, initial_state=None, output_final_state=False, newton_its=None, omega=1.0):
            return run(Wx, a, b, p, initial_state, output_final_state, newton_its, omega)
    else:
        def fn(Wx, a, b, initial_state=None, output_final_state=False, newton_its=None, omega=1.0):
            return run(Wx, a, b, None, initial_state, output_final_state, newton_its, omega)
    fn.__name__ = f"pararnn_{mode.replace('-', '_')}_{cell}"
    return fn


class _Bridge(torch.autograd.Function):
    """Run pararnn on a fresh module whose parameters are leaves made from the inputs, and hand its own gradients
    back to them (its Newton backward reads ``cell.parameters()`` when it runs, after the call has returned)."""

    @staticmethod
    def forward(ctx, run, names, x, h0, *vals):
        with torch.enable_grad():
            leaves = [torch.nn.Parameter(v.detach().clone()) for v in vals]  # Parameter() of a graph value detaches
            xl = x.detach().requires_grad_(True)
            hl = h0.detach().requires_grad_(True) if h0 is not None else None
            out = run(dict(zip(names, leaves)), xl, hl)
        ctx.graph = (out, xl, hl, leaves)
        return out.detach()

    @staticmethod
    def backward(ctx, g):
        out, xl, hl, leaves = ctx.graph
        wrt = [xl] + ([hl] if hl is not None else []) + leaves
        gs = list(torch.autograd.grad(out, wrt, g, allow_unused=True))
        gx = gs.pop(0)
        gh = gs.pop(0) if hl is not None else None
        return (None, None, gx, gh, *gs)


def _call(cell, dh, dtype, params, fwd, x, h0):
    """``fwd(module, x, h0)`` on a fresh pararnn cell holding ``params``, differentiable in x, h0 and params."""
    from pararnn import cells

    def run(ps, xl, hl):
        kw = {"mix": "diag"} if cell == "paragru" else {}
        m = getattr(cells, CELLS[cell])(d_in=3 * dh, d_h=dh, max_recurrent_norm=None, dtype=dtype, **kw)
        for name, v in ps.items():
            mod, _, leaf = name.rpartition(".")
            (m.get_submodule(mod) if mod else m)._parameters[leaf] = (
                v if isinstance(v, torch.nn.Parameter) else torch.nn.Parameter(v, requires_grad=False))
        return fwd(m, xl, hl)

    names = tuple(params)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad
                                              for t in (x, h0, *params.values())):
        with torch.no_grad():
            return run(params, x, h0)
    return _Bridge.apply(run, names, x, h0, *params.values())


def reduce(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """pararnn's eager scans in rnnconf's reduction layout (A [B, T, M, 1] or [B, T, M, K, K], r [B, T, M, K])."""
    from pararnn.solvers.scan import scan_block2, scan_dense, scan_diag

    B, T, M, K = r.shape
    if A.dim() == r.dim():
        return scan_diag(A[..., 0], r[..., 0])[..., None]
    if K == 2:
        return scan_block2(A.permute(0, 1, 3, 4, 2), r.permute(0, 1, 3, 2)).permute(0, 1, 3, 2)
    d = scan_dense(A.permute(0, 2, 1, 3, 4).reshape(B * M, T, K, K), r.permute(0, 2, 1, 3).reshape(B * M, T, K))
    return d.reshape(B, M, T, K).permute(0, 2, 1, 3)


def build(cell: str, mode: str) -> Target:
    import pararnn  # noqa: F401  (an ImportError here is the adapter's "not installed")

    extras = {}
    if mode != "sequential":
        extras = {"newton": {"its_kw": "newton_its", "omega_kw": "omega", "reduce": reduce,
                             "iterations": 3 if mode == "newton" else None}}
    # newton: its early stop tests max|F| over the whole call (adaptive); newton-exact runs T iterations (not adaptive)
    traits = Traits(accumulate=None, cumsum="none", solve="sequential" if mode == "sequential" else "newton",
                    adaptive=mode == "newton")
    cfg = {"sequential": "sequential_apply", "newton": "newton_apply, NewtonConfig() (3 iterations, early stop at "
           "max|F| < 1e-5)", "newton-exact": "newton_apply, NewtonConfig(max_iters=T, residual_atol=None, "
           "residual_fail=None)"}[mode]
    return Target(cell, f"pararnn:{mode}:{cell}", _api(cell, mode), kind="external", traits=traits,
                  dtypes=FLOAT_DTYPES, supports=_FEATURES, extras=extras,
                  doc=f"pararnn-torch {_version()} {CELLS[cell]}(mix='diag', max_recurrent_norm=None), {cfg}; "
                      f"identity W_x, eager CPU paths")


for _cell_id in CELLS:
    for _mode in ("sequential", "newton", "newton-exact"):
        register_adapter(Adapter(
            name=f"pararnn:{_mode}:{_cell_id}", spec_id=_cell_id, library=LIBRARY, distribution=DISTRIBUTION,
            doc=f"pararnn-torch {CELLS[_cell_id]} through {_mode} (eager CPU path)",
            build=(lambda c, m: lambda: build(c, m))(_cell_id, _mode)))
