"""Random-weight models with the exact Qwen3-Embedding-0.6B / Qwen3-Reranker-0.6B shapes.

The weights are random (no machine here can download the published ones), but every shape,
the tokenizer and the stored dtype (bf16) are the real ones, so the compute per token is the
real model's. Folders are cached under ``benchmarks/.cache``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
FIXTURES = ROOT.parent.parent / "shared" / "fixtures"
EMBEDDING_TOKENIZER = FIXTURES / "qwen3-embedding-tokenizer"
RERANKER_TOKENIZER = FIXTURES / "qwen3-tokenizer"

# Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B share this config (config.json on the hub).
QWEN3_06B: dict[str, Any] = {
    "vocab_size": 151669,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_bias": False,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}
QWEN3_06B_PARAMETERS = 595_776_512
TINY: dict[str, Any] = {
    **QWEN3_06B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


def make_config(shape: dict[str, Any], kind: str) -> Any:
    """A ``Qwen3Config`` for ``kind`` ("embedding" or "reranker") with the given shape."""
    from transformers import Qwen3Config

    cfg = Qwen3Config(**shape)
    cfg.architectures = ["Qwen3Model" if kind == "embedding" else "Qwen3ForCausalLM"]
    return cfg


def parameter_count(shape: dict[str, Any], kind: str = "embedding") -> int:
    """Parameters of the model (tied LM head counted once), built on the meta device."""
    from transformers import Qwen3ForCausalLM, Qwen3Model

    cls = Qwen3Model if kind == "embedding" else Qwen3ForCausalLM
    with torch.device("meta"):
        model = cls(make_config(shape, kind))
    return sum(p.numel() for p in model.parameters())


def _random_state(shape: dict[str, Any], kind: str, seed: int) -> dict[str, torch.Tensor]:
    from transformers import Qwen3ForCausalLM, Qwen3Model

    cls = Qwen3Model if kind == "embedding" else Qwen3ForCausalLM
    with torch.device("meta"):
        model = cls(make_config(shape, kind))
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():  # tied lm_head appears once
        if name.endswith("norm.weight"):
            value = torch.ones(param.shape)
        else:
            value = torch.randn(param.shape, generator=gen) * 0.02
        state[name] = value.to(torch.bfloat16).contiguous()
    return state


def build(folder: Path, kind: str, *, shape: dict[str, Any] = QWEN3_06B, seed: int = 0) -> Path:
    """Write a random-weight model folder (bf16 safetensors + config + real tokenizer).

    Reuses ``folder`` when it is already complete.
    """
    from safetensors.torch import save_file

    tokenizer = EMBEDDING_TOKENIZER if kind == "embedding" else RERANKER_TOKENIZER
    if not tokenizer.is_dir():
        raise FileNotFoundError(
            f"the real Qwen3 tokenizers are needed in {FIXTURES} (../shared/fixtures)"
        )
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("building random-weight %s model in %s", kind, folder)
    cfg = make_config(shape, kind)
    cfg.dtype = torch.bfloat16
    cfg.save_pretrained(folder)
    save_file(
        _random_state(shape, kind, seed),
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer / name, folder / name)
    done.write_text("ok\n")
    return folder


def without_chat_template(folder: Path, target: Path) -> Path:
    """Copy of a model folder (weights linked) whose tokenizer carries no chat template.

    sentence-transformers 6 applies a tokenizer's chat template to plain strings when it
    builds a model from a plain folder; the Qwen3 tokenizer files carry one, so a fair
    comparison needs it removed.
    """
    target.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        dest = target / item.name
        if item.name == "tokenizer_config.json":
            cfg = json.loads(item.read_text())
            cfg.pop("chat_template", None)
            dest.write_text(json.dumps(cfg, indent=2))
        elif item.name == "chat_template.jinja":
            continue
        elif not dest.exists():
            dest.symlink_to(item.resolve())
    return target


def sentence_transformers_folder(folder: Path, target: Path, query_prompt: str) -> Path:
    """A model folder laid out as the published Qwen3-Embedding repositories ship it for
    sentence-transformers: last-token pooling, then normalisation, and the query prompt.

    The weights are linked, and the chat template removed (see :func:`without_chat_template`),
    so sentence-transformers embeds the text itself.
    """
    without_chat_template(folder, target)
    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    modules = [
        ("", "sentence_transformers.models.Transformer"),
        ("1_Pooling", "sentence_transformers.models.Pooling"),
        ("2_Normalize", "sentence_transformers.models.Normalize"),
    ]
    (target / "modules.json").write_text(
        json.dumps(
            [
                {"idx": i, "name": str(i), "path": path, "type": kind}
                for i, (path, kind) in enumerate(modules)
            ],
            indent=2,
        )
    )
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (target / "2_Normalize").mkdir(exist_ok=True)
    (target / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": query_prompt, "document": ""},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 8192, "do_lower_case": False}, indent=2)
    )
    return target
