"""Tiny random-weight Qwen3 models and tokenizers for tests (and the benchmarks' shapes).

Everything here writes real model folders (``config.json`` + ``model.safetensors`` + tokenizer
files) that the package then loads through its normal loading code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
QWEN3_TOKENIZER = FIXTURES / "qwen3-tokenizer"
QWEN3_EMBEDDING_TOKENIZER = FIXTURES / "qwen3-embedding-tokenizer"
FIXTURES_MISSING = (
    "the real Qwen3 tokenizers are not here: ../shared/fixtures (beside the repository) is absent"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "Paris is the capital of France and a large city in Europe.",
    "Python is a programming language; def main(): return 42",
    "Instruct: Given a web search query, retrieve relevant passages that answer the query",
    "Query: what is the answer? Document: the answer is yes or no.",
    "Judge whether the Document meets the requirements based on the Query and the Instruct",
    "provided. Note that the answer can only be yes or no. assistant user system think",
    "Machine learning models turn text into vectors; similar texts get similar vectors.",
    "Rerankers read a query and a candidate together and output a relevance score.",
]


def train_tiny_tokenizer(folder: Path, *, append_eos: bool = False) -> Path:
    """Train a small byte-level BPE tokenizer with the Qwen special tokens and save it.

    Args:
        folder: Where to write ``tokenizer.json`` and its config.
        append_eos: Add the Qwen3-Embedding post-processor that appends ``<|endoftext|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    tok.add_tokens(["yes", "no"])
    if append_eos:
        eos = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>",
            pair="$A <|endoftext|> $B <|endoftext|>",
            special_tokens=[("<|endoftext|>", eos)],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    return folder


def tiny_config(vocab_size: int, *, seed_scale: float = 0.2, tie: bool = True):  # type: ignore[no-untyped-def]
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        initializer_range=seed_scale,
        tie_word_embeddings=tie,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def build_model(
    folder: Path,
    tokenizer_dir: Path,
    *,
    kind: str,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
    config=None,  # type: ignore[no-untyped-def]
) -> Path:
    """Save a random-weight Qwen3 (``kind`` = "embedding" or "reranker") beside a tokenizer."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3Model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    cfg = config if config is not None else tiny_config(vocab)
    torch.manual_seed(seed)
    model = (Qwen3Model if kind == "embedding" else Qwen3ForCausalLM)(cfg)
    model = model.to(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = Path(tokenizer_dir) / name
        if src.exists():
            shutil.copy(src, folder / name)
    return folder


def convert_to_seq_cls(causal_dir: Path, folder: Path) -> Path:
    """Convert a causal Qwen3-Reranker folder the way the published conversions do.

    As ``tomaarsen/Qwen3-Reranker-*-seq-cls`` and vLLM's ``is_original_qwen3_reranker`` do:
    a ``Qwen3ForSequenceClassification`` with ``num_labels=1``, the same decoder, and the
    score row ``lm_head[yes] - lm_head[no]``; saved in float32, beside the tokenizer.
    """
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(causal_dir)
    causal = load_reference(Qwen3ForCausalLM, causal_dir)
    config = causal.config
    config.architectures = ["Qwen3ForSequenceClassification"]
    config.num_labels = 1
    config.pad_token_id = tok.pad_token_id
    converted = Qwen3ForSequenceClassification(config).eval()
    converted.model.load_state_dict(causal.model.state_dict())
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    with torch.no_grad():
        head = causal.get_output_embeddings().weight
        converted.score.weight.copy_((head[yes] - head[no]).unsqueeze(0))
    converted.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(causal_dir) / name).exists():
            shutil.copy(Path(causal_dir) / name, folder / name)
    return folder


def load_reference(cls, folder: Path, dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    """``cls.from_pretrained(folder)`` in ``dtype``, eval mode: the tests' independent model.

    Spelled for every transformers version the project allows (``dtype=`` since 4.56,
    ``torch_dtype=`` before).
    """
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return cls.from_pretrained(folder, **{key: dtype}).eval()
