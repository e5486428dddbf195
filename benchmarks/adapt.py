"""Training throughput: ``qwen3_rag.adapt`` against sentence-transformers' trainer.

``python -m benchmarks.adapt`` trains a LoRA adapter for a few steps on a random-weight model
with the Qwen3-Embedding-0.6B shapes, on the same triplets, with the same batch, LoRA
settings (rank 16, alpha 32, dropout 0.05, every linear layer), optimizer settings, inputs
(the instruction on queries, ``<|endoftext|>`` at the end, at most 128 tokens) and float32
on the CPU, in two trainers:

* ours: :func:`qwen3_rag.adapt.train_embedder` (InfoNCE with the report's in-batch terms);
* sentence-transformers' ``SentenceTransformerTrainer`` with
  ``MultipleNegativesRankingLoss`` (scale 20 = temperature 0.05), last-token pooling and
  normalisation.

Each runs ``--warmup`` steps that are not timed, then ``--steps`` timed ones; throughput is
tokens (queries, passages and negatives, as the model reads them) per second of the timed
steps. Prints a small table.
"""

from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import models
from benchmarks.run import corpus
from qwen3_rag.adapt.train import ALL_LINEAR

logger = logging.getLogger(__name__)

INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
MAX_LENGTH = 128
LORA_R, LORA_ALPHA, LORA_DROPOUT = 16, 32, 0.05
LR = 1e-4


def triplets(n: int) -> list[tuple[str, str, str]]:
    """(query, passage, negative): real paragraphs of Python's docs; the query is a slice."""
    docs = [d for d in corpus(400, longest=4000) if len(d) > 600]  # > MAX_LENGTH tokens
    out = []
    for i in range(n):
        doc, other = docs[i % len(docs)], docs[(i + 1) % len(docs)]
        out.append((" ".join(doc.split()[3:13]), doc, other))
    return out


def ours(
    folder: Path,
    data: list[tuple[str, str, str]],
    batch: int,
    warmup: int,
    *,
    queries_only: bool = False,
) -> dict[str, Any]:
    from qwen3_rag.adapt import TrainConfig, Triplet, train_embedder

    examples = [
        Triplet("train", f"q{i}", q, f"d{i}", p, (f"n{i}",), (n,))
        for i, (q, p, n) in enumerate(data)
    ]
    stamps: list[float] = []
    config = TrainConfig(
        epochs=1,
        batch_size=batch,
        learning_rate=LR,
        negatives=1,
        lora_r=LORA_R,
        lora_alpha=LORA_ALPHA,
        lora_dropout=LORA_DROPOUT,
        max_length=MAX_LENGTH,
        warmup=0.1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        train_embedder(
            str(folder),
            examples,
            Path(tmp) / "train",
            config=config,
            instruction=INSTRUCTION,
            device="cpu",
            on_step=lambda e, s, loss: stamps.append(time.perf_counter()),
            queries_only=queries_only,
        )
    return {"stamps": [began, *stamps], "warmup": warmup}


def sentence_transformers(
    folder: Path, data: list[tuple[str, str, str]], batch: int, warmup: int
) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig, inject_adapter_in_model
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import TrainerCallback

    transformer = Transformer(
        str(folder), max_seq_length=MAX_LENGTH, model_kwargs={"dtype": torch.float32}
    )
    model = SentenceTransformer(
        modules=[
            transformer,
            Pooling(transformer.get_embedding_dimension(), "lasttoken"),
            Normalize(),
        ],
        device="cpu",
    )
    # LoRA injected in place with peft: what model.add_adapter does through transformers, whose
    # integration asks for a newer peft than this machine's registry has
    inject_adapter_in_model(
        LoraConfig(
            target_modules=list(ALL_LINEAR),
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=LORA_DROPOUT,
        ),
        transformer.auto_model,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    dataset = Dataset.from_dict(
        {
            "anchor": [q for q, _, _ in data],
            "positive": [p for _, p, _ in data],
            "negative": [n for _, _, n in data],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=1,
            per_device_train_batch_size=batch,
            learning_rate=LR,
            warmup_steps=0.1,
            max_grad_norm=1.0,
            prompts={"anchor": f"Instruct: {INSTRUCTION}\nQuery:"},
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            loss=MultipleNegativesRankingLoss(model, scale=20.0),
            callbacks=[Clock()],
        )
        trainer.train()
    return {"stamps": stamps, "warmup": warmup}


def token_count(folder: Path, data: list[tuple[str, str, str]]) -> int:
    """Tokens the model reads for all examples (the same inputs in both trainers)."""
    from qwen3_rag import Embedder
    from qwen3_rag.embedder import embedding_inputs
    from qwen3_rag.instructions import EOS_TOKEN
    from qwen3_rag.loading import ModelSource, load_fast_tokenizer, token_id

    emb = Embedder(str(folder), instruction=INSTRUCTION)
    tok = load_fast_tokenizer(ModelSource(str(folder)))
    eos = token_id(tok, EOS_TOKEN, ModelSource(str(folder)))
    texts = (
        emb.query_inputs([q for q, _, _ in data])
        + [p for _, p, _ in data]
        + [n for _, _, n in data]
    )
    seqs, _ = embedding_inputs(tok, texts, MAX_LENGTH, eos)
    return sum(len(s) for s in seqs)


def rate(result: dict[str, Any], tokens_per_example: float, batch: int) -> tuple[float, float]:
    """(seconds per timed step, tokens per second) from the step timestamps."""
    stamps = result["stamps"]
    timed = stamps[1 + result["warmup"] :]
    start = stamps[result["warmup"]]
    steps = len(timed)
    seconds = (timed[-1] - start) / steps
    return seconds, tokens_per_example * batch / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adapt", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per trainer (4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (1)")
    parser.add_argument("--batch", type=int, default=4, help="queries per step (4)")
    parser.add_argument("--cache", type=Path, default=models.CACHE, help="model folder cache")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from qwen3_rag import tune_cpu_threads

    threads = tune_cpu_threads()
    shape, tag = (models.TINY, "tiny") if args.tiny else (models.QWEN3_06B, "0.6b")
    emb_dir = models.build(args.cache / f"embedding-{tag}", "embedding", shape=shape)
    st_dir = models.without_chat_template(emb_dir, args.cache / f"embedding-{tag}-st")
    n = args.batch * (args.steps + args.warmup)
    data = triplets(n)
    per_example = token_count(emb_dir, data) / n
    rows = []
    for name, fn, folder in (
        ("qwen3_rag.adapt", ours, emb_dir),
        ("sentence-transformers (MNRL)", sentence_transformers, st_dir),
    ):
        torch.manual_seed(0)
        result = fn(folder, data, args.batch, args.warmup)
        gc.collect()
        seconds, tps = rate(result, per_example, args.batch)
        rows.append((name, seconds, tps))
    base = rows[1][2]
    print(
        f"LoRA training, {'tiny' if args.tiny else 'Qwen3-Embedding-0.6B'} shapes (random "
        f"weights), "
        f"float32 CPU, {threads} threads; batch {args.batch} (query + passage + 1 negative), "
        f"{per_example:.0f} tokens per example, {args.steps} timed steps after {args.warmup}"
    )
    print("| trainer | s/step | tokens/s | vs sentence-transformers |")
    print("|---|---:|---:|---:|")
    for name, seconds, tps in rows:
        print(f"| {name} | {seconds:.2f} | {tps:.1f} | {tps / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
