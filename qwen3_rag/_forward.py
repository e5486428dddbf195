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
  are computed once and every continuation attends to them; attention is causal, so this is
  the same computation as running each full sequence.

:func:`supports` says whether a model has the structure this relies on; callers fall back
to the model's own forward when it does not.

Example:
    >>> import torch
    >>> from transformers import Qwen3Config, Qwen3Model
    >>> cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64,
    ...                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    ...                   head_dim=8)
    >>> model = Qwen3Model(cfg).eval()
    >>> ids, lengths = right_pad([[1, 2, 3], [4, 5]], 0, torch.device("cpu"))
    >>> last_hidden(model, ids, lengths).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from qwen3_rag.batching import left_pad

__all__ = ["KV", "final_hidden", "last_hidden", "prefix_kv", "right_pad", "supports"]

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Keys and values of every layer, each ``(1, kv_heads, prefix_len, head_dim)``, rotated."""

_SDPA_GQA = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


def supports(model: Any) -> bool:
    """Whether ``model`` is a plain Qwen3 decoder stack this module can run.

    Args:
        model: A loaded ``Qwen3Model`` (or anything shaped like one).

    Returns:
        ``True`` for full-attention Qwen3 layers with the usual submodules.
    """
    cfg = getattr(model, "config", None)
    layers = getattr(model, "layers", None)
    if cfg is None or layers is None or len(layers) == 0:
        return False
    if getattr(cfg, "model_type", None) != "qwen3":
        return False
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return False
    need = ("embed_tokens", "norm", "rotary_emb")
    attn_need = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
    layer = layers[0]
    return (
        all(hasattr(model, n) for n in need)
        and all(hasattr(layer.self_attn, n) for n in attn_need)
        and all(hasattr(layer, n) for n in ("input_layernorm", "post_attention_layernorm", "mlp"))
    )


def right_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists.

    Args:
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with (never attended to by a real token).
        device: Where to put the tensors.

    Returns:
        ``(input_ids, lengths)``: ``(batch, longest)`` and ``(batch,)``, int64.
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return ids.to(device), lengths.to(device)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos) + (rotated * sin)


def _heads(proj: Any, norm: Any | None, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Project ``x`` (B, T, hidden) to heads (B, heads, T, head_dim), norming per head."""
    b, t, _ = x.shape
    h: torch.Tensor = proj(x).view(b, t, -1, head_dim)
    if norm is not None:
        h = norm(h)
    return h.transpose(1, 2)


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


def _run(
    model: Any,
    ids: torch.Tensor,
    lengths: torch.Tensor | None,
    past: KV | None,
    keep_kv: bool,
) -> tuple[torch.Tensor | None, KV]:
    """Run the stack over right-padded ``ids`` that continue ``past`` (if any).

    Projections, MLPs and norms run on the real tokens only, packed into one
    ``(tokens, hidden)`` matrix, so padding costs them nothing; only attention sees the
    padded ``(batch, heads, width, head_dim)`` layout, where right padding and the causal
    mask keep every real token from seeing a pad.

    Returns the final-norm hidden state at each row's last real token (unless ``keep_kv``,
    which returns only the keys and values of every layer, for a prefix of batch 1).
    """
    batch, width = ids.shape
    past_len = past[0][0].shape[2] if past else 0
    layers = list(model.layers)
    attn0 = layers[0].self_attn
    head_dim = int(attn0.head_dim)
    scale = float(attn0.scaling)
    dev = ids.device
    if lengths is None:
        lengths = torch.full((batch,), width, dtype=torch.long, device=dev)

    real = torch.arange(width, device=dev).unsqueeze(0) < lengths.unsqueeze(1)  # (B, W)
    flat = real.reshape(-1).nonzero().squeeze(1)  # where each real token sits in the grid
    padded = flat.numel() < batch * width
    last = lengths.cumsum(0) - 1  # each row's last token, in the packed order
    last_pos = lengths - 1  # ... and its position within the row

    def to_grid(t: torch.Tensor, norm: Any | None) -> torch.Tensor:
        """(tokens, heads * head_dim) -> (B, heads, W, head_dim), pads zero."""
        t = t.view(t.shape[0], -1, head_dim)
        if norm is not None:
            t = norm(t)
        if padded:
            grid = t.new_zeros((batch * width, *t.shape[1:]))
            grid[flat] = t
            t = grid
        return t.view(batch, width, -1, head_dim).transpose(1, 2)

    x = model.embed_tokens(ids.reshape(-1)[flat] if padded else ids.reshape(-1))  # (T, hidden)
    positions = torch.arange(past_len, past_len + width, device=dev).unsqueeze(0)
    cos, sin = model.rotary_emb(x, positions)  # (1, W, head_dim)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    mask: torch.Tensor | None = None
    if past_len:
        # every new token sees the whole prefix and the new tokens up to itself
        mask = torch.ones((width, past_len + width), dtype=torch.bool, device=dev)
        mask[:, past_len:] = torch.ones((width, width), dtype=torch.bool, device=dev).tril()

    kept: KV = []
    for n, layer in enumerate(layers):
        attn = layer.self_attn
        final = n == len(layers) - 1
        h = layer.input_layernorm(x)
        k = _rope(to_grid(attn.k_proj(h), attn.k_norm), cos, sin)
        v = to_grid(attn.v_proj(h), None)
        if past:
            pk, pv = past[n]
            k_all = torch.cat((pk.expand(batch, -1, -1, -1), k), dim=2)
            v_all = torch.cat((pv.expand(batch, -1, -1, -1), v), dim=2)
        else:
            k_all, v_all = k, v
        if keep_kv:
            kept.append((k, v))
            if final:
                return None, kept
        if not final:
            q = _rope(to_grid(attn.q_proj(h), attn.q_norm), cos, sin)
            out = _attend(q, k_all, v_all, mask=mask, causal=mask is None, scale=scale)
            out = out.transpose(1, 2).reshape(batch * width, -1)
            x = x + attn.o_proj(out[flat] if padded else out)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            continue
        # final layer: only the last real token of each row goes on
        h_last = h[last].unsqueeze(1)  # (B, 1, hidden)
        cos_l = cos[0, 0, last_pos].unsqueeze(1).unsqueeze(1)  # (B, 1, 1, head_dim)
        sin_l = sin[0, 0, last_pos].unsqueeze(1).unsqueeze(1)
        q = _rope(_heads(attn.q_proj, attn.q_norm, h_last, head_dim), cos_l, sin_l)
        keys = torch.arange(past_len + width, device=dev)
        see = (keys.unsqueeze(0) <= (last_pos + past_len).unsqueeze(1))[:, None, None, :]
        out = _attend(q, k_all, v_all, mask=see, causal=False, scale=scale)
        out = out.transpose(1, 2).reshape(batch, 1, -1)
        x_last = x[last].unsqueeze(1) + attn.o_proj(out)
        x_last = x_last + layer.mlp(layer.post_attention_layernorm(x_last))
        return model.norm(x_last)[:, 0], kept
    raise AssertionError("unreachable: the loop returns at the final layer")


def last_hidden(
    model: Any, ids: torch.Tensor, lengths: torch.Tensor, past: KV | None = None
) -> torch.Tensor:
    """Final-norm hidden state at each row's last real token.

    Args:
        model: A Qwen3 decoder stack (``Qwen3Model``) for which :func:`supports` is true.
        ids: ``(batch, width)`` right-padded token ids (see :func:`right_pad`).
        lengths: ``(batch,)`` real length of each row (>= 1).
        past: Keys and values of a shared prefix (from :func:`prefix_kv`) that every row
            continues, or ``None``.

    Returns:
        ``(batch, hidden)`` in the model's dtype.
    """
    hidden, _ = _run(model, ids, lengths, past, keep_kv=False)
    assert hidden is not None
    return hidden


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
    _, kv = _run(model, ids, None, None, keep_kv=True)
    return kv


def final_hidden(
    model: Any,
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device,
    *,
    fast: bool,
    past: KV | None = None,
) -> torch.Tensor:
    """Final-norm hidden state at the last token of each sequence, by the best exact path.

    Args:
        model: A Qwen3 decoder stack.
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with.
        device: The model's device.
        fast: Whether :func:`supports` holds for ``model``; otherwise transformers' own
            forward runs, left-padded with positions that ignore the padding.
        past: A shared prefix from :func:`prefix_kv` (fast path only).

    Returns:
        ``(len(sequences), hidden)`` in the model's dtype.
    """
    if fast:
        ids, lengths = right_pad(sequences, pad_id, device)
        return last_hidden(model, ids, lengths, past)
    if past is not None:
        raise ValueError("a shared prefix needs the lean forward (fast=True)")
    ids, mask, positions = left_pad(sequences, pad_id, device)
    hidden: torch.Tensor = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    return hidden[:, -1]
