"""A lean forward pass over a loaded Qwen3 decoder stack, for the two things this package needs.

``transformers``' own forward computes every position of every layer and builds a padding
mask per batch. Here the model's own modules (embeddings, norms, projections, MLPs, rotary
embedding) do all the arithmetic; only the orchestration differs, and it is exact:

* **Right padding, causal attention.** Sequences are padded on the right, so a real token
  never sees a pad (the pads come after it) and causal attention alone is the right mask:
  no padding mask, every sequence has the positions ``0..n-1`` it has alone, and SDPA can use
  its fused causal kernel. This equals the recipe's left padding with an attention mask.
* **Padding costs the linear layers nothing.** Projections, MLPs and norms run on the real
  tokens only, packed into one ``(tokens, hidden)`` matrix (large, efficient matmuls); only
  attention uses the padded layout.
* **Only the last position after the final layer.** Both models read one hidden state per
  sequence (the last real token). The final layer computes keys and values for every
  position, but its query, attention output, MLP and the final norm only for that token.
* **A shared prefix computed once** (reranker). Keys and values of a common token prefix
  are computed once (:func:`prefix_kv`) and every continuation attends to them
  (:func:`last_hidden` with ``past``); attention is causal, so this is the same computation
  as running each full sequence.

This relies on transformers' module layout, which is not a public API. :func:`supports`
checks every attribute it reads, and :func:`self_check` runs a short probe through both this
path and the model's own forward at load time; callers use the model's own forward
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
    >>> ids, lengths = right_pad([[1, 2, 3], [4, 5]], 0, torch.device("cpu"))
    >>> last_hidden(model, ids, lengths).shape
    torch.Size([2, 32])
    >>> self_check(model, pad_id=0) <= 1e-4
    True
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from qwen3_rag.batching import left_pad, right_pad

__all__ = [
    "KV",
    "final_hidden",
    "last_hidden",
    "model_last_hidden",
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


def supports(model: Any) -> bool:
    """Whether ``model`` has every part, attribute and signature this module reads.

    Args:
        model: A loaded ``Qwen3Model`` (or anything shaped like one).

    Returns:
        ``True`` for a Qwen3 decoder stack with full (not sliding-window) attention in every
        layer, the usual submodules, an integer ``head_dim`` and float ``scaling`` on each
        attention module, and a rotary embedding called as ``rotary_emb(x, position_ids)``.
    """
    if not all(hasattr(model, part) for part in _MODEL_PARTS):
        return False
    cfg = model.config
    if getattr(cfg, "model_type", None) != "qwen3" or getattr(cfg, "use_sliding_window", False):
        return False
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return False
    layers = model.layers
    if len(layers) == 0:
        return False
    for layer in layers:
        if not all(hasattr(layer, part) for part in _LAYER_PARTS):
            return False
        attn = layer.self_attn
        if not all(hasattr(attn, part) for part in _ATTENTION_PARTS):
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


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos) + (rotated * sin)


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


class _Pass:
    """One pass over right-padded ``ids`` that continue ``past_len`` prefix tokens.

    Holds the layout (where the real tokens sit in the padded grid) and the rotary tables; its
    methods are the pieces of a decoder layer. Hidden states between layers are packed: one
    row per real token.
    """

    def __init__(self, model: Any, ids: torch.Tensor, lengths: torch.Tensor, past_len: int):
        self.batch, self.width = ids.shape
        self.past_len = past_len
        attn0 = model.layers[0].self_attn
        self.head_dim = int(attn0.head_dim)
        self.scale = float(attn0.scaling)
        dev = ids.device
        real = torch.arange(self.width, device=dev).unsqueeze(0) < lengths.unsqueeze(1)
        self.flat = real.reshape(-1).nonzero().squeeze(1)  # each real token's place in the grid
        self.padded = self.flat.numel() < self.batch * self.width
        self.last = lengths.cumsum(0) - 1  # each row's last token, in the packed order
        self.last_pos = lengths - 1  # ... and its position within the row
        tokens = ids.reshape(-1)[self.flat] if self.padded else ids.reshape(-1)
        self.x0: torch.Tensor = model.embed_tokens(tokens)  # (tokens, hidden)
        positions = torch.arange(past_len, past_len + self.width, device=dev).unsqueeze(0)
        cos, sin = model.rotary_emb(self.x0, positions)  # (1, W, head_dim)
        self.cos, self.sin = cos.unsqueeze(1), sin.unsqueeze(1)

    def grid(self, t: torch.Tensor, norm: Any | None) -> torch.Tensor:
        """(tokens, heads * head_dim) -> (B, heads, W, head_dim), pads zero."""
        t = t.view(t.shape[0], -1, self.head_dim)
        if norm is not None:
            t = norm(t)
        if self.padded:
            grid = t.new_zeros((self.batch * self.width, *t.shape[1:]))
            grid[self.flat] = t
            t = grid
        return t.view(self.batch, self.width, -1, self.head_dim).transpose(1, 2)

    def keys_values(self, layer: Any, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values of the normed hidden states ``h``, in the grid layout."""
        attn = layer.self_attn
        k = _rope(self.grid(attn.k_proj(h), attn.k_norm), self.cos, self.sin)
        return k, self.grid(attn.v_proj(h), None)

    def layer(
        self, layer: Any, x: torch.Tensor, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """The rest of a decoder layer for every real token, given its keys and values."""
        attn = layer.self_attn
        q = _rope(self.grid(attn.q_proj(h), attn.q_norm), self.cos, self.sin)
        if self.past_len:
            out = _attend_after_prefix(q, k, v, past_len=self.past_len, scale=self.scale)
        else:
            out = _attend(q, k, v, mask=None, causal=True, scale=self.scale)
        out = out.transpose(1, 2).reshape(self.batch * self.width, -1)
        x = x + attn.o_proj(out[self.flat] if self.padded else out)
        result: torch.Tensor = x + layer.mlp(layer.post_attention_layernorm(x))
        return result

    def last_layer(
        self, layer: Any, x: torch.Tensor, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """A decoder layer for each row's last real token only: ``(B, 1, hidden)``."""
        attn = layer.self_attn
        h_last = h[self.last].unsqueeze(1)  # (B, 1, hidden)
        cos = self.cos[0, 0, self.last_pos].unsqueeze(1).unsqueeze(1)  # (B, 1, 1, head_dim)
        sin = self.sin[0, 0, self.last_pos].unsqueeze(1).unsqueeze(1)
        q = attn.q_norm(attn.q_proj(h_last).view(self.batch, 1, -1, self.head_dim))
        q = _rope(q.transpose(1, 2), cos, sin)
        keys = torch.arange(self.past_len + self.width, device=x.device)
        see = keys.unsqueeze(0) <= (self.last_pos + self.past_len).unsqueeze(1)
        out = _attend(q, k, v, mask=see[:, None, None, :], causal=False, scale=self.scale)
        out = attn.o_proj(out.transpose(1, 2).reshape(self.batch, 1, -1))
        x_last = x[self.last].unsqueeze(1) + out
        result: torch.Tensor = x_last + layer.mlp(layer.post_attention_layernorm(x_last))
        return result


def prefix_kv(model: Any, prefix: Sequence[int], device: torch.device) -> KV:
    """Keys and values of every layer for one token prefix (batch 1).

    Args:
        model: A Qwen3 decoder stack for which :func:`supports` is true.
        prefix: Token ids (non-empty).
        device: The model's device.

    Returns:
        Per layer ``(keys, values)``, each ``(1, kv_heads, len(prefix), head_dim)``.
    """
    ids = torch.tensor([list(prefix)], dtype=torch.long, device=device)
    run = _Pass(model, ids, torch.tensor([len(prefix)], device=device), past_len=0)
    x, kv = run.x0, []
    layers = list(model.layers)
    for n, layer in enumerate(layers):
        h = layer.input_layernorm(x)
        k, v = run.keys_values(layer, h)
        kv.append((k, v))
        if n < len(layers) - 1:  # the last layer's output is never read
            x = run.layer(layer, x, h, k, v)
    return kv


def _decoder_layer(
    run: _Pass,
    layer: Any,
    x: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
    last: bool,
) -> torch.Tensor:
    """One decoder layer of :func:`last_hidden` (every real token, or the last ones only)."""
    h = layer.input_layernorm(x)
    k, v = run.keys_values(layer, h)
    if past is not None:
        pk, pv = past
        k = torch.cat((pk.expand(run.batch, -1, -1, -1), k), dim=2)
        v = torch.cat((pv.expand(run.batch, -1, -1, -1), v), dim=2)
    return run.last_layer(layer, x, h, k, v) if last else run.layer(layer, x, h, k, v)


def last_hidden(
    model: Any,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    past: KV | None = None,
    *,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Final-norm hidden state at each row's last real token.

    Projections, MLPs and norms run on the real tokens only, packed into one
    ``(tokens, hidden)`` matrix, so padding costs them nothing; only attention sees the
    padded ``(batch, heads, width, head_dim)`` layout, where right padding and the causal
    mask keep every real token from seeing a pad. The pass is plain differentiable torch, so
    training (``qwen3_rag.adapt``) runs it too, outside ``torch.inference_mode``.

    Args:
        model: A Qwen3 decoder stack (``Qwen3Model``) for which :func:`supports` is true.
        ids: ``(batch, width)`` right-padded token ids (see
            :func:`qwen3_rag.batching.right_pad`).
        lengths: ``(batch,)`` real length of each row (>= 1).
        past: Keys and values of a shared prefix (from :func:`prefix_kv`) that every row
            continues, or ``None``.
        checkpoint: Gradient checkpointing: when gradients are on, keep only each layer's
            input and recompute the layer during the backward pass (less memory, about a
            third more compute). Same values either way.

    Returns:
        ``(batch, hidden)`` in the model's dtype.
    """
    run = _Pass(model, ids, lengths, past_len=past[0][0].shape[2] if past else 0)
    x = run.x0
    layers = list(model.layers)
    recompute = checkpoint and torch.is_grad_enabled()
    for n, layer in enumerate(layers):
        args = (run, layer, x, past[n] if past else None, n == len(layers) - 1)
        if recompute:
            x = torch.utils.checkpoint.checkpoint(_decoder_layer, *args, use_reentrant=False)
        else:
            x = _decoder_layer(*args)
    out: torch.Tensor = model.norm(x)[:, 0]
    return out


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

    Args:
        model: A Qwen3 decoder stack.
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with.
        device: The model's device.
        fast: Whether the lean path applies (:func:`supports` and :func:`self_check` passed);
            otherwise transformers' own forward runs (:func:`model_last_hidden`).
        past: A shared prefix from :func:`prefix_kv` (fast path only).
        checkpoint: Gradient checkpointing in the lean path (see :func:`last_hidden`); for
            the model's own forward, enable it on the model
            (``model.gradient_checkpointing_enable()``).

    Returns:
        ``(len(sequences), hidden)`` in the model's dtype.
    """
    if fast:
        ids, lengths = right_pad(sequences, pad_id, device)
        return last_hidden(model, ids, lengths, past, checkpoint=checkpoint)
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
