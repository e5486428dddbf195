"""A lean forward pass over a loaded Qwen3 decoder stack, for the two things this package needs.

``transformers``' own forward computes every position of every layer and builds a padding
mask per batch. Here the model's own weights and modules do the arithmetic; only the
orchestration differs, and it is exact:

* **Packed tokens, no padding computed.** Sequences are packed into one ``(tokens, hidden)``
  matrix: projections, MLPs, norms and rotary embeddings run on the real tokens only (large,
  efficient matmuls). Attention runs one sequence at a time on CPU (causal SDPA on that
  sequence's rows: no pad is ever computed or copied); on accelerators, where one kernel
  launch per sequence would cost more than the padding, the rows are scattered into one
  right-padded grid, where the causal mask alone keeps every real token from seeing a pad.
  Every sequence has the positions ``0..n-1`` it has alone.
* **Only the last position after the final layer.** Both models read one hidden state per
  sequence (the last real token). The final layer computes keys and values for every
  position, but its query, attention output, MLP and the final norm only for that token.
* **A shared prefix computed once** (reranker). Keys and values of a common token prefix
  are computed once (:func:`prefix_kv`) and every continuation attends to them
  (:func:`last_hidden` with ``past``); attention is causal, so this is the same computation
  as running each full sequence.
* **Fewer, larger matmuls.** :func:`fuse_projections` lays each layer's query/key/value
  weights (and the MLP's gate/up weights) out as row blocks of one tensor at load time, and
  the modules' own ``weight`` parameters become views of those blocks (no extra memory, the
  model's own forward unchanged). One matmul then computes the three projections: the same
  dot products. In float32, RMS norms run as one ``F.rms_norm`` kernel with the module's
  weight and epsilon (the same arithmetic, fewer passes over memory).

This relies on transformers' module layout, which is not a public API. :func:`supports`
checks every attribute it reads (a fused block is used only while every module still reads
its weight from it), and :func:`self_check` runs a short probe through both this path and
the model's own forward at load time; callers use the model's own forward
(:func:`model_last_hidden`) when either fails.

Example:
    >>> import torch
    >>> from transformers import Qwen3Config, Qwen3Model
    >>> from qwen3_rag.batching import right_pad
    >>> cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64,
    ...                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    ...                   head_dim=8)
    >>> model = Qwen3Model(cfg).eval()
    >>> supports(model)
    True
    >>> fuse_projections(model)
    4
    >>> ids, lengths = right_pad([[1, 2, 3], [4, 5]], 0, torch.device("cpu"))
    >>> last_hidden(model, ids, lengths).shape
    torch.Size([2, 32])
    >>> self_check(model, pad_id=0) <= 1e-4
    True
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from qwen3_rag.batching import MAX_PADDING, left_pad

__all__ = [
    "KV",
    "final_hidden",
    "fuse_projections",
    "last_hidden",
    "model_last_hidden",
    "padding_limit",
    "per_sequence_attention",
    "prefix_kv",
    "self_check",
    "supports",
    "tolerance",
]

logger = logging.getLogger(__name__)

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Keys and values of every layer, each ``(1, kv_heads, prefix_len, head_dim)``, rotated."""

_SDPA_GQA = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)
_MODEL_PARTS = ("embed_tokens", "norm", "rotary_emb", "layers", "config")
_LAYER_PARTS = ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
_QKV = ("q_proj", "k_proj", "v_proj")
_GATE_UP = ("gate_proj", "up_proj")


def _is_rms_norm(module: Any) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor) and isinstance(
        getattr(module, "variance_epsilon", None), float
    )


def supports(model: Any) -> bool:
    """Whether ``model`` has every part, attribute and signature this module reads.

    Args:
        model: A loaded ``Qwen3Model`` (or anything shaped like one).

    Returns:
        ``True`` for a Qwen3 decoder stack with full (not sliding-window) attention in every
        layer, the usual submodules, an integer ``head_dim`` and float ``scaling`` on each
        attention module, RMS norms with a ``weight`` and a float ``variance_epsilon``, and a
        rotary embedding called as ``rotary_emb(x, position_ids)``. (Fused projection blocks
        are checked where they are read: see :func:`fuse_projections`.)
    """
    if not all(hasattr(model, part) for part in _MODEL_PARTS):
        return False
    cfg = model.config
    if getattr(cfg, "model_type", None) != "qwen3" or getattr(cfg, "use_sliding_window", False):
        return False
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return False
    layers = model.layers
    if len(layers) == 0 or not _is_rms_norm(model.norm):
        return False
    for layer in layers:
        if not all(hasattr(layer, part) for part in _LAYER_PARTS):
            return False
        attn = layer.self_attn
        if not all(hasattr(attn, part) for part in _ATTENTION_PARTS):
            return False
        norms = (layer.input_layernorm, layer.post_attention_layernorm, attn.q_norm, attn.k_norm)
        if not all(_is_rms_norm(norm) for norm in norms):
            return False
        if not isinstance(getattr(attn, "head_dim", None), int):
            return False
        if not isinstance(getattr(attn, "scaling", None), float):
            return False
    try:
        params = list(inspect.signature(model.rotary_emb.forward).parameters)
    except (TypeError, ValueError):
        return False
    return params[:2] == ["x", "position_ids"]


# -- fused projection weights ----------------------------------------------------------------

#: owner module (attention or MLP) -> (the fused weight, the names of its row blocks, in order)
_FUSED: weakref.WeakKeyDictionary[torch.nn.Module, tuple[torch.Tensor, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _plain_linears(owner: Any, names: Sequence[str]) -> list[torch.nn.Linear] | None:
    """The named submodules if every one is a bias-free ``nn.Linear`` over a plain weight.

    Anything else (a LoRA wrapper, a quantized weight, a bias) returns ``None``: such a
    module computes more than ``x @ weight.T``.
    """
    linears = [getattr(owner, name, None) for name in names]
    first = linears[0]
    if not isinstance(first, torch.nn.Linear):
        return None
    for m in linears:
        if type(m) is not torch.nn.Linear or m.bias is not None:
            return None
        w = m.weight
        if type(w) is not torch.nn.Parameter or not w.is_floating_point() or w.dim() != 2:
            return None
        if (w.dtype, w.device, w.shape[1]) != (
            first.weight.dtype,
            first.weight.device,
            first.weight.shape[1],
        ):
            return None
    return linears  # type: ignore[return-value]


def fuse_projections(model: Any) -> int:
    """Lay out each layer's q/k/v weights, and gate/up weights, as row blocks of one tensor.

    Each module's ``weight`` becomes a view of its block (the values are unchanged and no
    second copy is kept), so transformers' own forward computes exactly what it did, and
    the lean forward computes the three (two) projections with one matmul. Modules that are
    not plain bias-free ``nn.Linear`` layers (quantized, LoRA-wrapped) are left alone, and a
    block is read only while every module still points into it (:func:`_fused_block`).

    Args:
        model: A Qwen3 decoder stack for which :func:`supports` is true.

    Returns:
        How many groups were fused (two per layer for a plain float model).
    """
    fused_groups = 0
    with torch.no_grad():
        for layer in model.layers:
            for owner, names in ((layer.self_attn, _QKV), (layer.mlp, _GATE_UP)):
                if owner in _FUSED and _fused_block(owner, names) is not None:
                    fused_groups += 1
                    continue
                if owner is not layer.self_attn and not (
                    hasattr(owner, "act_fn") and hasattr(owner, "down_proj")
                ):
                    continue
                linears = _plain_linears(owner, names)
                if linears is None:
                    continue
                fused = torch.cat([m.weight.detach() for m in linears])
                row = 0
                for m in linears:
                    rows = m.weight.shape[0]
                    m.weight = torch.nn.Parameter(
                        fused[row : row + rows], requires_grad=m.weight.requires_grad
                    )
                    row += rows
                _FUSED[owner] = (fused, names)
                fused_groups += 1
    return fused_groups


def _fused_block(owner: Any, names: Sequence[str]) -> torch.Tensor | None:
    """The rows of ``owner``'s fused weight that hold ``names`` (consecutive), if still valid.

    Valid means every module of the group is still a plain ``nn.Linear`` whose weight is
    exactly its block of the fused tensor (so a replaced, moved, quantized or wrapped module
    is noticed and the modules are called instead).
    """
    entry = _FUSED.get(owner)
    if entry is None:
        return None
    fused, order = entry
    linears = _plain_linears(owner, order)
    if linears is None or names[0] not in order:
        return None
    first = order.index(names[0])
    if tuple(order[first : first + len(names)]) != tuple(names):
        return None
    row_bytes = fused.stride(0) * fused.element_size()
    row = 0
    start = stop = 0
    for name, m in zip(order, linears, strict=True):
        w = m.weight
        if (
            w.dtype != fused.dtype
            or not w.is_contiguous()
            or w.data_ptr() != fused.data_ptr() + row * row_bytes
        ):
            return None
        if name == names[0]:
            start = row
        row += w.shape[0]
        if name == names[-1]:
            stop = row
    if row != fused.shape[0]:
        return None
    return fused[start:stop]


def _project(owner: Any, names: Sequence[str], x: torch.Tensor) -> list[torch.Tensor]:
    """``[getattr(owner, name)(x) for name in names]``, with one matmul when they are fused."""
    block = _fused_block(owner, names)
    if block is None:
        return [getattr(owner, name)(x) for name in names]
    sizes = [getattr(owner, name).weight.shape[0] for name in names]
    return list(torch.split(F.linear(x, block), sizes, dim=-1))


def _mlp(mlp: Any, x: torch.Tensor) -> torch.Tensor:
    """The MLP, ``down(act(gate(x)) * up(x))``; gate and up in one matmul when fused."""
    if _fused_block(mlp, _GATE_UP) is None:
        out: torch.Tensor = mlp(x)
        return out
    gate, up = _project(mlp, _GATE_UP, x)
    act = mlp.act_fn(gate)
    # in place when no gradient is recorded: one large allocation fewer per layer (on CPU a
    # fresh multi-MB tensor costs page faults comparable to the multiplication itself)
    out = mlp.down_proj(act * up if torch.is_grad_enabled() else act.mul_(up))
    return out


# -- arithmetic pieces -----------------------------------------------------------------------


def _norm(module: Any, x: torch.Tensor) -> torch.Tensor:
    """The RMS norm ``module`` computes: one fused kernel in float32, else the module itself.

    In float32 ``F.rms_norm`` is the same arithmetic as Qwen3's ``RMSNorm``
    (``weight * x * rsqrt(mean(x**2) + eps)``) in one pass; other dtypes keep the module's
    own rounding steps.
    """
    if x.dtype == torch.float32 and module.weight.dtype == torch.float32:
        return F.rms_norm(x, module.weight.shape, module.weight, module.variance_epsilon)
    out: torch.Tensor = module(x)
    return out


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding ``x * cos + rotate_half(x) * sin`` (``rotate_half(x) = [-x2, x1]``)."""
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None,
    causal: bool,
    scale: float,
) -> torch.Tensor:
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and not _SDPA_GQA:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    kwargs: dict[str, Any] = {"enable_gqa": True} if groups > 1 and _SDPA_GQA else {}
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal, scale=scale, **kwargs
    )


#: Most elements (query rows x keys) of one attention mask. SDPA needs an explicit mask once
#: the queries continue a prefix, and its CPU kernel copies a boolean mask to floats: unchunked,
#: one 32k-token document after a shared query took +3.3 GB (measured, 0.6B width), against
#: +0.96 GB in chunks. Chunks keep the mask and its float copy under ~80 MB.
_MASK_ELEMENTS = 1 << 24


def _attend_after_prefix(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, past_len: int, scale: float
) -> torch.Tensor:
    """Causal attention of new tokens that continue a ``past_len``-token prefix.

    Each new token sees the whole prefix and the new tokens up to itself. The queries go in
    chunks whose mask holds at most :data:`_MASK_ELEMENTS` elements, each against the keys up to
    its last query only (later keys are masked for all of its rows), so memory stays linear in
    the length; inputs of usual size are one chunk.
    """
    width = q.shape[2]
    rows = max(1, _MASK_ELEMENTS // k.shape[2])
    if rows >= width:
        mask = torch.ones((width, k.shape[2]), dtype=torch.bool, device=q.device).tril(past_len)
        return _attend(q, k, v, mask=mask, causal=False, scale=scale)
    out = q.new_empty((q.shape[0], q.shape[1], width, v.shape[3]))
    for start in range(0, width, rows):
        stop = min(start + rows, width)
        seen = past_len + stop
        mask = torch.ones((stop - start, seen), dtype=torch.bool, device=q.device)
        out[:, :, start:stop] = _attend(
            q[:, :, start:stop],
            k[:, :, :seen],
            v[:, :, :seen],
            mask=mask.tril(past_len + start),
            causal=False,
            scale=scale,
        )
    return out


def _heads(t: torch.Tensor) -> torch.Tensor:
    """(tokens, heads, head_dim) -> (1, heads, tokens, head_dim), a view."""
    return t.transpose(0, 1).unsqueeze(0)


def per_sequence_attention(device: torch.device) -> bool:
    """Whether attention runs one sequence at a time on ``device`` (CPU) or on a padded grid.

    On CPU a kernel call costs microseconds and padding costs real arithmetic, so each
    sequence attends alone; on accelerators one launch over a padded grid is cheaper.
    """
    return device.type == "cpu"


def padding_limit(fast: bool, device: torch.device) -> float | None:
    """The padding share at which a length-sorted batch is cut (``plan_batches``' ``max_padding``).

    ``None`` (no cut: larger batches, larger matmuls) when the lean forward attends one
    sequence at a time, where padding costs nothing; else
    :data:`~qwen3_rag.batching.MAX_PADDING`, since attention on a padded grid, and
    transformers' own forward everywhere, pay for every pad.

    Args:
        fast: Whether the lean forward runs (see :func:`final_hidden`).
        device: The model's device.
    """
    return None if fast and per_sequence_attention(device) else MAX_PADDING


class _Pass:
    """One pass over packed sequences that continue ``past_len`` shared prefix tokens.

    Holds the layout (where each sequence's rows are), the rotary tables and the attention
    masks; its methods are the pieces of a decoder layer. Hidden states between layers are
    packed: one row per real token, sequence after sequence.
    """

    def __init__(
        self,
        model: Any,
        tokens: torch.Tensor,
        lengths: Sequence[int],
        past_len: int,
        per_sequence: bool | None = None,
    ):
        dev = tokens.device
        self.lengths = [int(n) for n in lengths]
        self.starts = [0]
        for n in self.lengths[:-1]:
            self.starts.append(self.starts[-1] + n)
        self.batch, self.width = len(self.lengths), max(self.lengths)
        self.past_len = past_len
        self.per_sequence = per_sequence_attention(dev) if per_sequence is None else per_sequence
        attn0 = model.layers[0].self_attn
        self.head_dim = int(attn0.head_dim)
        self.scale = float(attn0.scaling)
        n_t = torch.tensor(self.lengths, device=dev)
        starts_t = torch.tensor(self.starts, device=dev)
        self.last = starts_t + n_t - 1  # each sequence's last row
        row_of = torch.repeat_interleave(torch.arange(self.batch, device=dev), n_t)
        position = torch.arange(tokens.numel(), device=dev) - starts_t[row_of]  # within its row
        self.x0: torch.Tensor = model.embed_tokens(tokens)  # (tokens, hidden)
        cos, sin = model.rotary_emb(self.x0, (position + past_len).unsqueeze(0))  # (1, T, D)
        self.cos, self.sin = cos[0].unsqueeze(1), sin[0].unsqueeze(1)  # (T, 1, head_dim)
        if not self.per_sequence:
            self.flat = row_of * self.width + position  # each row's place in the padded grid
            self.padded = tokens.numel() < self.batch * self.width

    # -- layout --

    def _grid(self, t: torch.Tensor) -> torch.Tensor:
        """(tokens, heads, head_dim) -> (B, heads, W, head_dim), pads zero."""
        if self.padded:
            grid = t.new_zeros((self.batch * self.width, *t.shape[1:]))
            grid[self.flat] = t
            t = grid
        return t.reshape(self.batch, self.width, -1, self.head_dim).transpose(1, 2)

    def _causal(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of new queries, after the shared prefix's keys if there are any."""
        if self.past_len:
            return _attend_after_prefix(q, k, v, past_len=self.past_len, scale=self.scale)
        return _attend(q, k, v, mask=None, causal=True, scale=self.scale)

    def _with_past(
        self, k: torch.Tensor, v: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values ``(b, kv_heads, n, head_dim)`` preceded by the shared prefix's, if any."""
        if past is None:
            return k, v
        pk, pv = past
        b = k.shape[0]
        return (
            torch.cat((pk.expand(b, -1, -1, -1), k), dim=2),
            torch.cat((pv.expand(b, -1, -1, -1), v), dim=2),
        )

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Causal attention of every token: packed ``q``, ``k``, ``v`` -> ``(tokens, q_width)``."""
        if self.per_sequence:
            outs = []
            for s, n in zip(self.starts, self.lengths, strict=True):
                ks, vs = self._with_past(_heads(k[s : s + n]), _heads(v[s : s + n]), past)
                out = self._causal(_heads(q[s : s + n]), ks, vs)
                outs.append(out[0].transpose(0, 1))  # (n, heads, head_dim)
            return torch.cat(outs).flatten(1)
        kg, vg = self._with_past(self._grid(k), self._grid(v), past)
        out = self._causal(self._grid(q), kg, vg)
        out = out.transpose(1, 2).reshape(self.batch * self.width, -1)
        return out[self.flat] if self.padded else out

    def attend_last(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Attention of each sequence's last token: ``q`` ``(B, heads, dim)`` -> ``(B, width)``."""
        if self.per_sequence:
            outs = []
            for i, (s, n) in enumerate(zip(self.starts, self.lengths, strict=True)):
                ks, vs = self._with_past(_heads(k[s : s + n]), _heads(v[s : s + n]), past)
                out = _attend(
                    q[i : i + 1].unsqueeze(2), ks, vs, mask=None, causal=False, scale=self.scale
                )
                outs.append(out.reshape(1, -1))
            return torch.cat(outs)
        kg, vg = self._with_past(self._grid(k), self._grid(v), past)
        keys = torch.arange(self.past_len + self.width, device=q.device)
        lengths = torch.tensor(self.lengths, device=q.device)
        see = keys.unsqueeze(0) < (lengths + self.past_len).unsqueeze(1)
        out = _attend(
            q.unsqueeze(2), kg, vg, mask=see[:, None, None, :], causal=False, scale=self.scale
        )
        return out.reshape(self.batch, -1)

    # -- layer pieces --

    def keys_values(self, attn: Any, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values ``(tokens, kv_heads, head_dim)`` of the normed input ``h``."""
        k, v = _project(attn, ("k_proj", "v_proj"), h)
        k = _rope(_norm(attn.k_norm, k.view(h.shape[0], -1, self.head_dim)), self.cos, self.sin)
        return k, v.view(h.shape[0], -1, self.head_dim)

    def layer(
        self, layer: Any, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A decoder layer for every token: ``(output, keys, values)``, all packed."""
        attn = layer.self_attn
        h = _norm(layer.input_layernorm, x)
        q, k, v = _project(attn, _QKV, h)
        t = h.shape[0]
        q = _rope(_norm(attn.q_norm, q.view(t, -1, self.head_dim)), self.cos, self.sin)
        k = _rope(_norm(attn.k_norm, k.view(t, -1, self.head_dim)), self.cos, self.sin)
        v = v.view(t, -1, self.head_dim)
        # residual sums added into the fresh projection outputs (autograd-safe: a matmul's
        # backward does not read its output), which saves an allocation each
        x = attn.o_proj(self.attend(q, k, v, past)).add_(x)
        x = _mlp(layer.mlp, _norm(layer.post_attention_layernorm, x)).add_(x)
        return x, k, v

    def last_layer(
        self, layer: Any, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """A decoder layer for each sequence's last token only: ``(B, hidden)``."""
        attn = layer.self_attn
        h = _norm(layer.input_layernorm, x)
        k, v = self.keys_values(attn, h)
        q = attn.q_proj(h[self.last]).view(self.batch, -1, self.head_dim)
        q = _rope(_norm(attn.q_norm, q), self.cos[self.last], self.sin[self.last])
        x_last = x[self.last] + attn.o_proj(self.attend_last(q, k, v, past))
        out: torch.Tensor = x_last + _mlp(layer.mlp, _norm(layer.post_attention_layernorm, x_last))
        return out


def _pack(
    sequences: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, list[int]]:
    tokens = torch.tensor([t for s in sequences for t in s], dtype=torch.long, device=device)
    return tokens, [len(s) for s in sequences]


def prefix_kv(model: Any, prefix: Sequence[int], device: torch.device) -> KV:
    """Keys and values of every layer for one token prefix (batch 1).

    Args:
        model: A Qwen3 decoder stack for which :func:`supports` is true.
        prefix: Token ids (non-empty).
        device: The model's device.

    Returns:
        Per layer ``(keys, values)``, each ``(1, kv_heads, len(prefix), head_dim)``.
    """
    tokens, lengths = _pack([prefix], device)
    run = _Pass(model, tokens, lengths, past_len=0)
    x, kv = run.x0, []
    layers = list(model.layers)
    for n, layer in enumerate(layers):
        if n < len(layers) - 1:
            x, k, v = run.layer(layer, x, None)
        else:  # the last layer's output is never read
            k, v = run.keys_values(layer.self_attn, _norm(layer.input_layernorm, x))
        kv.append((_heads(k).contiguous(), _heads(v).contiguous()))
    return kv


def _layer_output(
    run: _Pass,
    layer: Any,
    x: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
    last: bool,
) -> torch.Tensor:
    """One decoder layer's output: every token's, or (the last layer) each sequence's last."""
    if last:
        return run.last_layer(layer, x, past)
    return run.layer(layer, x, past)[0]


def _packed_last_hidden(
    model: Any,
    tokens: torch.Tensor,
    lengths: Sequence[int],
    past: KV | None,
    per_sequence: bool | None,
    checkpoint: bool = False,
) -> torch.Tensor:
    run = _Pass(
        model, tokens, lengths, past[0][0].shape[2] if past else 0, per_sequence=per_sequence
    )
    x = run.x0
    layers = list(model.layers)
    recompute = checkpoint and torch.is_grad_enabled()
    for n, layer in enumerate(layers):
        args = (run, layer, x, past[n] if past else None, n == len(layers) - 1)
        if recompute:  # keep each layer's input only; recompute the layer in the backward pass
            x = torch.utils.checkpoint.checkpoint(_layer_output, *args, use_reentrant=False)
        else:
            x = _layer_output(*args)
    return _norm(model.norm, x)


def last_hidden(
    model: Any,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    past: KV | None = None,
    *,
    per_sequence: bool | None = None,
) -> torch.Tensor:
    """Final-norm hidden state at each row's last real token.

    The real tokens are packed into one ``(tokens, hidden)`` matrix, so projections, MLPs,
    norms and rotary embeddings never see a pad; attention runs per sequence or on a padded
    grid (see :func:`per_sequence_attention`).

    Args:
        model: A Qwen3 decoder stack (``Qwen3Model``) for which :func:`supports` is true.
        ids: ``(batch, width)`` right-padded token ids (see
            :func:`qwen3_rag.batching.right_pad`).
        lengths: ``(batch,)`` real length of each row (>= 1).
        past: Keys and values of a shared prefix (from :func:`prefix_kv`) that every row
            continues, or ``None``.
        per_sequence: Attention layout: one sequence at a time (``True``) or one padded grid
            (``False``); ``None`` chooses by device. Both compute the same values.

    Returns:
        ``(batch, hidden)`` in the model's dtype.
    """
    real = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
    return _packed_last_hidden(model, ids[real], lengths.tolist(), past, per_sequence)


def model_last_hidden(
    model: Any, sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> torch.Tensor:
    """The same as :func:`final_hidden`, through transformers' own forward (the reference).

    Left padding with an attention mask, and position ids that ignore the padding, so every
    result is independent of its batch (the recipe's layout).
    """
    ids, mask, positions = left_pad(sequences, pad_id, device)
    hidden: torch.Tensor = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    return hidden[:, -1]


def final_hidden(
    model: Any,
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device,
    *,
    fast: bool,
    past: KV | None = None,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Final-norm hidden state at the last token of each sequence, by the best exact path.

    Both paths are plain differentiable torch: training (:mod:`qwen3_rag.adapt`) runs this
    same function outside ``torch.inference_mode``, so it trains on what inference computes.

    Args:
        model: A Qwen3 decoder stack.
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with.
        device: The model's device.
        fast: Whether the lean path applies (:func:`supports` and :func:`self_check` passed);
            otherwise transformers' own forward runs (:func:`model_last_hidden`).
        past: A shared prefix from :func:`prefix_kv` (fast path only).
        checkpoint: Gradient checkpointing in the lean path: when gradients are on, keep only
            each layer's input and recompute the layer during the backward pass (less memory,
            about a third more compute; the same values). For the model's own forward, enable
            it on the model (``model.gradient_checkpointing_enable()``).

    Returns:
        ``(len(sequences), hidden)`` in the model's dtype.
    """
    if fast:
        tokens, lengths = _pack(sequences, device)
        return _packed_last_hidden(model, tokens, lengths, past, None, checkpoint)
    if past is not None:
        raise ValueError("a shared prefix needs the lean forward (fast=True)")
    return model_last_hidden(model, sequences, pad_id, device)


def tolerance(dtype: torch.dtype, quantize: str | None = None) -> float:
    """Largest difference :func:`self_check` accepts: 1e-4 in float32, else 3e-2.

    16-bit types keep about three significant digits, and int8 layers quantize activations
    per call, so two exact orderings of the same arithmetic drift apart by ~1e-3 there (4e-3
    measured on a random-weight model); a broken layout (a missing norm, a wrong rotary)
    differs by O(1e-1) and more, far above either bound.
    """
    return 1e-4 if dtype == torch.float32 and quantize is None else 3e-2


def _probe(vocab_size: int) -> list[list[int]]:
    """Three token sequences of different lengths that share a 5-token prefix."""
    ids = [(37 * i + 11) % max(2, min(vocab_size, 4096)) for i in range(16)]
    return [ids[:12], ids[:5] + ids[12:16], ids[:5] + ids[7:9]]


@torch.inference_mode()
def self_check(model: Any, pad_id: int) -> float:
    """Run a short probe through the lean path and the model's own forward; return the gap.

    The probe covers padding (three lengths in one batch) and a shared prefix (its keys and
    values computed once, then continued). Outputs are compared after L2 normalisation, the
    form both models' results are read in.

    Args:
        model: A Qwen3 decoder stack for which :func:`supports` is true.
        pad_id: The padding token id.

    Returns:
        The largest absolute difference between the two paths (compare with
        :func:`tolerance`); ``inf`` if the lean path raised.
    """
    device = model.embed_tokens.weight.device
    sequences = _probe(int(model.embed_tokens.weight.shape[0]))
    reference = F.normalize(model_last_hidden(model, sequences, pad_id, device).float(), dim=-1)
    try:
        lean = final_hidden(model, sequences, pad_id, device, fast=True)
        past = prefix_kv(model, sequences[0][:5], device)
        rests = [s[5:] for s in sequences]
        shared = final_hidden(model, rests, pad_id, device, fast=True, past=past)
    except Exception:  # a layout this module does not know: the caller falls back
        logger.debug("the lean forward failed on the probe", exc_info=True)
        return float("inf")
    gaps = [
        (F.normalize(out.float(), dim=-1) - reference).abs().max().item() for out in (lean, shared)
    ]
    return max(gaps)
