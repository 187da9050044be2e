"""Adapters for PyTorch's own recurrent layers — ``torch.nn.LSTM``, ``torch.nn.GRU`` and
``torch.nn.RNN(nonlinearity="tanh")`` — onto the specs ``lstm``, ``gru`` and ``elman``
(:mod:`rnnconf.spec.nonlinear`).  On a CPU that is ATen's native kernel (``_VF.lstm`` / ``gru`` / ``rnn_tanh``),
on a GPU cuDNN.

The mapping, per head h (the layers have no heads: one call per head, on that head's slices; the block-diagonal
R of the spec is exactly H independent single-head layers):

* input size = G·D, ``weight_ih_l0`` = the identity of size G·D, ``bias_ih_l0`` = 0: the layer's input projection
  reproduces Wx[:, :, :, h] flattened gate-major (x·Iᵀ is exact: every product is by 0 or 1, every sum adds zeros);
* ``weight_hh_l0`` [G·D, D] = R[:, h] stacked gate-major (row g·D + out = R[g, h, out, :], already [out, in]);
* ``bias_hh_l0`` = b[:, h] flattened.

The gate orders agree: LSTM's (i, f, g, o) is the spec's (i, f, z, o); GRU's (r, z, n), with the reset applied to
(W_hn h + b_hn) — after the recurrent matmul, as the spec says, b[n] being b_hn; RNN has one gate.  States: h0 / c0
are ``[num_layers = 1, B, D]`` (batch_first only affects input and output).  The weights are passed with
``torch.func.functional_call``, so gradients reach Wx, R, b and the initial state through ATen's own backward.

Traits (PyTorch's behaviour, not read from a kernel: ATen's CPU path is matmuls and pointwise cells, its state
and gates in the input dtype, so half inputs are *not* computed in float32 between steps):
``accumulate=None`` (the input dtype), ``cumsum="none"``, ``layout_dependent=True`` (the matmul's blocking may
follow strides).  Natively cuDNN chooses its own algorithms, and its float32 RNN matmuls may use TF32 while
``torch.backends.cudnn.allow_tf32`` is set (PyTorch's default), so on a GPU the traits then say ``matmul="tf32"``.
"""
from __future__ import annotations

import functools

import torch

from ..spec.errors import Traits
from ..spec.targets import FLOAT_DTYPES, Target
from . import Adapter, register_adapter

# spec id -> (module class, G, S, extra constructor kwargs)
LAYERS = {
    "lstm": ("LSTM", 4, 2, {}),
    "gru": ("GRU", 3, 1, {}),
    "elman": ("RNN", 1, 1, {"nonlinearity": "tanh"}),
}


def _traits() -> Traits:
    tf32 = torch.cuda.is_available() and torch.backends.cudnn.allow_tf32
    return Traits(accumulate=None, cumsum="none", layout_dependent=True, matmul="tf32" if tf32 else "ieee")


def _one_head(layer: torch.nn.Module, spec_id: str, x, Rh, bh, st):
    """Run ``layer`` on one head: x [B, T, G·D], Rh [G, D, D], bh [G, D], st [S, B, D] or None."""
    G, D = Rh.shape[0], Rh.shape[-1]
    params = {"weight_ih_l0": torch.eye(G * D, dtype=x.dtype, device=x.device),
              "weight_hh_l0": Rh.reshape(G * D, D),
              "bias_ih_l0": x.new_zeros(G * D),
              "bias_hh_l0": bh.reshape(G * D)}
    if st is None:
        y, hn = torch.func.functional_call(layer, params, (x,))
    elif spec_id == "lstm":
        y, hn = torch.func.functional_call(layer, params, (x, (st[0:1], st[1:2])))
    else:
        y, hn = torch.func.functional_call(layer, params, (x, st[0:1]))
    final = torch.cat(hn, 0) if isinstance(hn, tuple) else hn  # [S, B, D]
    return y, final


def _api(spec_id: str):
    cls_name, G_, S, kw = LAYERS[spec_id]

    def fn(Wx, R, b, initial_state=None, output_final_state=False):
        B, T, G, H, D = Wx.shape
        if G != G_:
            raise ValueError(f"torch.nn.{cls_name} has {G_} gates; Wx has G = {G}")
        layer = _layer(cls_name, G * D, D, Wx.dtype, str(Wx.device), tuple(sorted(kw.items())))
        ys, finals = [], []
        for h in range(H):
            x = Wx[:, :, :, h].reshape(B, T, G * D)
            st = initial_state[:, :, h] if initial_state is not None else None
            y, final = _one_head(layer, spec_id, x, R[:, h], b[:, h], st)
            ys.append(y)
            finals.append(final)
        h_out = torch.stack(ys, 2)  # [B, T, H, D]
        return h_out, (torch.stack(finals, 2) if output_final_state else None)

    fn.__name__ = fn.__qualname__ = cls_name
    fn.__doc__ = f"torch.nn.{cls_name} per head, through rnnconf's canonical {spec_id} signature"
    return fn


@functools.lru_cache(maxsize=None)
def _layer(cls_name: str, input_size: int, hidden: int, dtype, device: str, kw: tuple) -> torch.nn.Module:
    """One parameter-free-in-effect layer per shape (its own parameters are replaced on every call)."""
    layer = getattr(torch.nn, cls_name)(input_size, hidden, batch_first=True, device=device, dtype=dtype, **dict(kw))
    for p in layer.parameters():
        p.requires_grad_(False)
    return layer


def build(spec_id: str) -> Target:
    cls_name = LAYERS[spec_id][0]
    backend = "cuDNN on CUDA inputs" if torch.cuda.is_available() else "ATen's CPU kernel"
    return Target(spec_id, f"torch:nn.{cls_name}", _api(spec_id), kind="external", traits=_traits(),
                  dtypes=FLOAT_DTYPES, supports=frozenset({"initial_state", "final_state", "grad"}),
                  deterministic=True,
                  doc=f"torch {torch.__version__} torch.nn.{cls_name} ({backend}), identity input projection, "
                      f"one call per head")


for _spec_id, (_cls, *_rest) in LAYERS.items():
    register_adapter(Adapter(
        name=f"torch:nn.{_cls}", spec_id=_spec_id, library="torch", distribution="torch",
        doc=f"PyTorch torch.nn.{_cls} (ATen CPU / cuDNN) mapped onto {_spec_id}: identity W_ih, W_hh = R per head",
        build=(lambda s: lambda: build(s))(_spec_id)))
