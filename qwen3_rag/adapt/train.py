"""LoRA training of Qwen3-Embedding (and, optionally, Qwen3-Reranker) on the inference recipe.

Training sees exactly what inference sees. Queries are formatted by
:meth:`qwen3_rag.Embedder.query_inputs` (the instruction, ``Instruct: ...\\nQuery:``),
passages by :meth:`~qwen3_rag.Embedder.document_inputs` (raw text); both are tokenized by
:func:`qwen3_rag.embedder.embedding_inputs` (cut to ``max_length - 1`` tokens, then
``<|endoftext|>``), run through the same lean forward (:func:`qwen3_rag._forward.final_hidden`,
exact, with padding that cannot shift positions: the trap that makes a left-padded first loss
~14 instead of ~3), pooled at the last token and L2-normalised. The reranker's pairs go
through :func:`qwen3_rag.reranker.rerank_inputs` and are scored by the ``yes``/``no`` rows of
the LM head, as :class:`qwen3_rag.Reranker` scores them.

The loop is plain torch: AdamW on the LoRA weights (``peft``), linear warm-up then decay,
gradient clipping, float32 on CPU and bfloat16 on CUDA (LoRA weights stay float32), optional
gradient checkpointing. After every epoch a checkpoint is written atomically to
``epoch-NNN/`` (the adapter as safetensors, the optimizer state, ``state.json``); run the
same training again after an interruption and it continues from the last complete epoch and
ends with the same weights as an uninterrupted run.

Needs ``peft``: ``pip install "qwen3-rag[adapt]"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from qwen3_rag import _forward
from qwen3_rag._extras import install_hint, require
from qwen3_rag._files import replace_folder, write_json
from qwen3_rag.adapt.data import Triplet
from qwen3_rag.adapt.losses import DEFAULT_MARGIN, DEFAULT_TEMPERATURE, info_nce, yes_no_loss
from qwen3_rag.embedder import Embedder, embedding_inputs
from qwen3_rag.instructions import (
    EOS_TOKEN,
    RERANK_PREFIX,
    RERANK_SUFFIX,
    InstructionLike,
    format_rerank_body,
)
from qwen3_rag.loading import (
    ModelSource,
    load_config,
    load_fast_tokenizer,
    load_pretrained,
    resolve_device,
    resolve_dtype,
    token_id,
)
from qwen3_rag.options import (
    DeviceLike,
    DTypeLike,
    check_positive_int,
    check_rerank_instruction,
    progress_disabled,
)
from qwen3_rag.reranker import NO_TOKEN, YES_TOKEN, rerank_inputs

__all__ = [
    "ADAPT_EXTRA",
    "EpochStats",
    "TrainConfig",
    "TrainReport",
    "checkpoints",
    "require_peft",
    "train_embedder",
    "train_reranker",
]

logger = logging.getLogger(__name__)

ADAPT_EXTRA = install_hint("adapt")
#: Every linear layer of a Qwen3 decoder layer.
ALL_LINEAR: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
CHECKPOINT_PREFIX = "epoch-"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"


def require_peft() -> Any:
    """Import ``peft``, or raise an ``ImportError`` that names the extra to install."""
    return require("peft", "adapt", "training")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one training run (embedding or reranker).

    Attributes:
        epochs: Passes over the training triplets; one checkpoint each.
        batch_size: Queries per step (each with its passage and ``negatives`` negatives).
        learning_rate: AdamW's peak learning rate (after warm-up).
        warmup: Fraction of the steps with a linearly rising learning rate.
        weight_decay: AdamW's weight decay.
        temperature: The InfoNCE temperature (see :mod:`qwen3_rag.adapt.losses`).
        margin: The false-negative mask's margin (the report's 0.1).
        negatives: Hard negatives per query used (at most as many as were mined).
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / r``).
        lora_dropout: Dropout on the LoRA input.
        target_modules: The linear layers that get LoRA adapters.
        max_length: Most tokens per query or passage (per pair, for the reranker).
        gradient_checkpointing: Recompute each layer in the backward pass (less memory).
        max_grad_norm: Gradient clipping.
        seed: Seeds the order of the examples and the dropout, per epoch.
    """

    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup: float = 0.1
    weight_decay: float = 0.0
    temperature: float = DEFAULT_TEMPERATURE
    margin: float = DEFAULT_MARGIN
    negatives: int = 3
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_LINEAR
    max_length: int = 512
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lora_r", "lora_alpha"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.max_length, "max_length", 8)
        check_positive_int(self.negatives, "negatives", 0)
        check_positive_int(self.seed, "seed", 0)
        for name in ("learning_rate", "temperature", "max_grad_norm"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        for name in ("warmup", "lora_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
        if self.weight_decay < 0 or self.margin < 0:
            raise ValueError("weight_decay and margin must be >= 0")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not self.target_modules:
            raise ValueError("target_modules is empty")

    def to_dict(self) -> dict[str, Any]:
        """As plain data (``state.json``)."""
        d = dataclasses.asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass
class EpochStats:
    """One epoch of training.

    Attributes:
        epoch: Its number, from 1.
        loss: Mean training loss.
        dev_loss: Mean loss on the dev triplets (``None`` without dev triplets).
        steps: Optimizer steps.
        tokens: Tokens run through the model (queries, passages and negatives).
        seconds: Wall time of the epoch (training steps only).
    """

    epoch: int
    loss: float
    dev_loss: float | None
    steps: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        """Training throughput."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TrainReport:
    """What a training run did.

    Attributes:
        epochs: Per-epoch statistics, including epochs of earlier (interrupted) runs.
        checkpoints: The checkpoint folders, one per epoch.
        resumed_from: The epoch this run continued after, or ``None`` (a fresh run).
        fast: Whether the lean forward was used (else transformers' own forward).
        extra: Further results (the reranker's yes-rates).
    """

    epochs: list[EpochStats] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: int | None = None
    fast: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "epochs": [dataclasses.asdict(e) for e in self.epochs],
            "checkpoints": [str(p) for p in self.checkpoints],
            "resumed_from": self.resumed_from,
            "fast": self.fast,
            **self.extra,
        }


# -- the model with its LoRA adapters, in the inference formatting ------------------------------


class AdaptedModel:
    """A base Qwen3 model, its LoRA adapters, and the inference recipe's input path.

    Args:
        kind: ``"embedding"`` (``AutoModel``) or ``"reranker"`` (``AutoModelForCausalLM``).
        base_model: Hub id or folder of the base model.
        instruction: The instruction (queries, or the reranker prompt).
        max_length: Most tokens per input.
        device: Where to run.
        dtype: The base weights' dtype (default float32 on CPU, bfloat16 on CUDA).

    Raises:
        ValueError: If the base model is not a Qwen3 model.
    """

    def __init__(
        self,
        kind: str,
        base_model: str,
        *,
        instruction: InstructionLike = None,
        max_length: int = 512,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
    ) -> None:
        from transformers import AutoModel, AutoModelForCausalLM

        self.kind = kind
        self.source = ModelSource(base_model)
        config = load_config(self.source)
        model_type = getattr(config, "model_type", None)
        if model_type != "qwen3":
            raise ValueError(
                f"base model {base_model!r} is a {model_type!r} model, not Qwen3: adapt trains "
                f"Qwen3-Embedding and Qwen3-Reranker models"
            )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_length = max_length
        self.tokenizer = load_fast_tokenizer(self.source)
        self.eos_id = token_id(self.tokenizer, EOS_TOKEN, self.source)
        auto = AutoModel if kind == "embedding" else AutoModelForCausalLM
        self.model = load_pretrained(auto, self.source, self.device, self.dtype)
        self.decoder = self.model if kind == "embedding" else self.model.get_decoder()
        self.formatter = Embedder(base_model, instruction=instruction, max_length=max_length)
        self.instruction = instruction
        if kind == "reranker":
            self.rerank_instruction = check_rerank_instruction(instruction).instruction
            head = self.model.get_output_embeddings().weight
            ids = [token_id(self.tokenizer, t, self.source) for t in (NO_TOKEN, YES_TOKEN)]
            self.no_yes = head[ids].detach().float().clone()
            self.prefix_ids = self.tokenizer.encode(RERANK_PREFIX, add_special_tokens=False).ids
            self.suffix_ids = self.tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False).ids
        self.peft_model: Any = None
        self.fast = True
        self.checkpointing = False

    def add_lora(self, config: TrainConfig) -> None:
        """Wrap the model with a fresh LoRA adapter (``peft``), trainable, seeded."""
        peft = require_peft()
        lora = peft.LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            bias="none",
        )
        with torch.random.fork_rng(devices=[]):  # the adapter's initial weights, reproducibly
            torch.manual_seed(config.seed)
            self.peft_model = peft.get_peft_model(self.model, lora)
        self.check_fast()

    def load_adapters(self, folders: Sequence[Path]) -> list[str]:
        """Load saved adapters (not trainable), named ``a0``, ``a1`` ...; returns the names."""
        peft = require_peft()
        names = [f"a{i}" for i in range(len(folders))]
        self.peft_model = peft.PeftModel.from_pretrained(
            self.model, str(folders[0]), adapter_name=names[0]
        )
        for name, folder in zip(names[1:], folders[1:], strict=True):
            self.peft_model.load_adapter(str(folder), adapter_name=name)
        self.peft_model.eval()
        self.check_fast()
        return names

    def check_fast(self) -> None:
        """Use the lean forward when it supports the model and matches its own forward."""
        was_training = self.decoder.training
        self.decoder.eval()
        self.fast = _forward.supports(self.decoder) and _forward.self_check(
            self.decoder, self.eos_id
        ) <= _forward.tolerance(self.dtype)
        self.decoder.train(was_training)
        if not self.fast:
            logger.warning("the lean forward does not fit this model: using transformers' own")

    def enable_checkpointing(self) -> None:
        """Gradient checkpointing (the lean forward's, or transformers' own)."""
        self.checkpointing = True
        if not self.fast:
            self.decoder.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )

    def hidden(self, sequences: list[list[int]]) -> torch.Tensor:
        """Final-norm hidden state at each sequence's last token (differentiable)."""
        return _forward.final_hidden(
            self.decoder,
            sequences,
            self.eos_id,
            self.device,
            fast=self.fast,
            checkpoint=self.checkpointing,
        )

    def embed(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        """L2-normalised embeddings of formatted texts, and the token count.

        ``texts`` are what the model reads: format them with :attr:`formatter`
        (``query_inputs`` / ``document_inputs``).
        """
        sequences, _ = embedding_inputs(self.tokenizer, texts, self.max_length, self.eos_id)
        pooled = self.hidden(sequences).float()
        return F.normalize(pooled, p=2, dim=-1), sum(len(s) for s in sequences)

    def yes_minus_no(self, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, int]:
        """``logit_yes - logit_no`` of each (query, document) pair, and the token count."""
        bodies = [format_rerank_body(self.rerank_instruction, q, d) for q, d in pairs]
        sequences, _ = rerank_inputs(
            self.tokenizer, bodies, self.max_length, self.prefix_ids, self.suffix_ids
        )
        logits = self.hidden(sequences).float() @ self.no_yes.to(self.device).T
        return logits[:, 1] - logits[:, 0], sum(len(s) for s in sequences)


# -- checkpoints ------------------------------------------------------------------------------


def checkpoints(folder: Path) -> list[Path]:
    """The complete epoch checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def _fingerprint(triplets: Sequence[Triplet]) -> str:
    h = hashlib.sha256()
    for t in triplets:
        h.update(json.dumps(t.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _save(
    folder: Path,
    epoch: int,
    model: AdaptedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    target = folder / f"{CHECKPOINT_PREFIX}{epoch:03d}"

    def build(tmp: Path) -> None:
        model.peft_model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model card template
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
            tmp / OPTIMIZER_FILE,
        )
        write_json(tmp / STATE_FILE, state)

    replace_folder(target, build)
    return target


def _resume(
    folder: Path, expected: dict[str, Any], model: AdaptedModel, optimizer: Any, scheduler: Any
) -> tuple[int, list[EpochStats]]:
    """Load the last complete checkpoint; returns (its epoch, the epochs' statistics)."""
    done = checkpoints(folder)
    if not done:
        return 0, []
    last = done[-1]
    state = json.loads((last / STATE_FILE).read_text())
    changed = sorted(k for k in expected if state.get(k) != expected[k])
    if changed:
        raise ValueError(
            f"{folder} holds checkpoints of another training run ({', '.join(changed)} "
            f"differ): remove that folder, or re-run the train stage to start over"
        )
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(last / "adapter_model.safetensors"), device=str(model.device))
    result = set_peft_model_state_dict(model.peft_model, weights)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{last}: adapter weights do not fit the model")
    saved = torch.load(last / OPTIMIZER_FILE, map_location=model.device, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    stats = [EpochStats(**e) for e in state["epochs"]]
    logger.info("resuming training after epoch %d (%s)", state["epoch"], last)
    return int(state["epoch"]), stats


# -- training loops ---------------------------------------------------------------------------


def _schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(n: int, size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(f"{seed}\0{epoch}").shuffle(order)
    return [order[i : i + size] for i in range(0, n, size)]


StepCallback = Callable[[int, int, float], None]


def _run(
    *,
    model: AdaptedModel,
    config: TrainConfig,
    train: Sequence[Any],
    dev: Sequence[Any],
    out: Path,
    step_loss: Callable[[list[Any]], tuple[torch.Tensor, int]],
    expected: dict[str, Any],
    on_step: StepCallback | None,
    show_progress: bool | None,
    desc: str,
) -> TrainReport:
    out.mkdir(parents=True, exist_ok=True)
    if config.gradient_checkpointing:
        model.enable_checkpointing()
    params = [p for p in model.peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(train) / config.batch_size)
    total = per_epoch * config.epochs
    scheduler = _schedule(optimizer, int(config.warmup * total), total)
    start, stats = _resume(out, expected, model, optimizer, scheduler)
    report = TrainReport(epochs=stats, resumed_from=start or None, fast=model.fast)
    for epoch in range(start + 1, config.epochs + 1):
        torch.manual_seed(config.seed * 1_000_003 + epoch)  # LoRA dropout, reproducible
        model.peft_model.train()
        losses: list[float] = []
        tokens = 0
        began = time.perf_counter()
        batches = _batches(len(train), config.batch_size, config.seed, epoch)
        label = f"{desc} epoch {epoch}/{config.epochs}"
        with tqdm(
            batches, desc=label, unit="step", disable=progress_disabled(show_progress)
        ) as bar:
            for step, batch in enumerate(bar, start=1):
                loss, used = step_loss([train[i] for i in batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                tokens += used
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if on_step is not None:
                    on_step(epoch, step, losses[-1])
        seconds = time.perf_counter() - began
        dev_loss = _evaluate_loss(model, dev, step_loss, config.batch_size)
        stats.append(
            EpochStats(
                epoch=epoch,
                loss=sum(losses) / len(losses),
                dev_loss=dev_loss,
                steps=len(losses),
                tokens=tokens,
                seconds=seconds,
            )
        )
        state = {
            **expected,
            "epoch": epoch,
            "epochs": [dataclasses.asdict(e) for e in stats],
        }
        _save(out, epoch, model, optimizer, scheduler, state)
        logger.info(
            "%s epoch %d: loss %.4f%s, %.0f tokens/s",
            desc,
            epoch,
            stats[-1].loss,
            "" if dev_loss is None else f", dev loss {dev_loss:.4f}",
            stats[-1].tokens_per_second,
        )
    report.epochs = stats
    report.checkpoints = checkpoints(out)
    return report


def _evaluate_loss(
    model: AdaptedModel,
    dev: Sequence[Any],
    step_loss: Callable[[list[Any]], tuple[torch.Tensor, int]],
    batch_size: int,
) -> float | None:
    if not dev:
        return None
    model.peft_model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(dev), batch_size):
            batch = list(dev[i : i + batch_size])
            loss, _ = step_loss(batch)
            total += float(loss) * len(batch)
            count += len(batch)
    model.peft_model.train()
    return total / count


def _negatives_used(triplets: Sequence[Triplet], wanted: int) -> int:
    have = min((len(t.negatives) for t in triplets), default=0)
    if have < wanted:
        logger.warning(
            "only %d hard negatives per query are available (asked for %d)", have, wanted
        )
    return min(have, wanted)


def train_embedder(
    base_model: str,
    train: Sequence[Triplet],
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    dev: Sequence[Triplet] = (),
    instruction: InstructionLike = None,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    on_step: StepCallback | None = None,
    show_progress: bool | None = False,
    queries_only: bool = False,
) -> TrainReport:
    """Train a LoRA adapter on a Qwen3-Embedding model with the report's InfoNCE loss.

    With ``queries_only``, only the query side learns: every passage and negative is
    embedded once, before training, by the frozen base model through the inference recipe
    (no gradient; the very vectors an index of the base model stores), and the loss pulls
    the adapted queries towards those fixed vectors. The merged model is then a query model
    for the base (``Embedder(base, query_model=merged)``): nothing indexed by the base needs
    re-embedding, and each step runs the model on the queries alone.

    Args:
        base_model: Hub id or folder of the base Qwen3-Embedding model.
        train: Training triplets (:func:`~qwen3_rag.adapt.data.read_triplets`).
        out: Folder of the epoch checkpoints; a run there before is resumed.
        config: The settings (default :class:`TrainConfig`).
        dev: Triplets for the per-epoch dev loss.
        instruction: The query instruction trained with (use the same at inference).
        device: Where to train (default CUDA, else MPS, else CPU).
        dtype: The base weights' dtype (default float32 on CPU, bfloat16 on CUDA).
        on_step: Called as ``on_step(epoch, step, loss)`` after every optimizer step.
        show_progress: A progress bar per epoch.
        queries_only: Train the query side only, against the base model's fixed document
            vectors (see above).

    Returns:
        The :class:`TrainReport` (per-epoch losses, checkpoint folders).

    Raises:
        ValueError: If the base model is not Qwen3, ``train`` is empty, or ``out`` holds
            checkpoints of a different run.
        ImportError: Without ``peft`` (``pip install "qwen3-rag[adapt]"``).
    """
    config = config or TrainConfig()
    require_peft()
    if not train:
        raise ValueError("train is empty: no training triplets")
    k = _negatives_used(train, config.negatives)
    model = AdaptedModel(
        "embedding",
        base_model,
        instruction=instruction,
        max_length=config.max_length,
        device=device,
        dtype=dtype,
    )
    fmt = model.formatter
    fixed = _document_vectors(model, [*train, *dev], k, config.batch_size) if queries_only else {}
    model.add_lora(config)

    def documents(batch: list[Triplet]) -> tuple[torch.Tensor, int]:
        docs = [t.positive for t in batch] + [n for t in batch for n in t.negatives[:k]]
        if queries_only:
            return torch.stack([fixed[text] for text in docs]), 0
        return model.embed(fmt.document_inputs(docs))

    def step_loss(batch: list[Triplet]) -> tuple[torch.Tensor, int]:
        q, q_tokens = model.embed(fmt.query_inputs([t.query for t in batch]))
        d, d_tokens = documents(batch)
        n = len(batch)
        negatives = d[n:].view(n, k, -1) if k else None
        same = torch.tensor(
            [
                [a.positive_id == b.positive_id or a.positive == b.positive for b in batch]
                for a in batch
            ],
            device=q.device,
        )
        loss = info_nce(
            q, d[:n], negatives, temperature=config.temperature, margin=config.margin, same=same
        )
        return loss, q_tokens + d_tokens

    expected = {
        "kind": "embedding",
        "base_model": base_model,
        "instruction": fmt.instruction,
        "config": config.to_dict(),
        "data": _fingerprint(train),
        "queries_only": queries_only,
    }
    return _run(
        model=model,
        config=config,
        train=train,
        dev=dev,
        out=Path(out),
        step_loss=step_loss,
        expected=expected,
        on_step=on_step,
        show_progress=show_progress,
        desc="Training",
    )


def _document_vectors(
    model: AdaptedModel, triplets: Sequence[Triplet], k: int, batch_size: int
) -> dict[str, torch.Tensor]:
    """The frozen base model's vector of every passage and used negative, computed once."""
    texts = sorted({d for t in triplets for d in (t.positive, *t.negatives[:k])})
    inputs = model.formatter.document_inputs(texts)
    out: dict[str, torch.Tensor] = {}
    model.decoder.eval()
    with torch.no_grad():  # plain tensors (not inference ones): the loss reads them later
        for start in range(0, len(texts), batch_size):
            vectors, _ = model.embed(inputs[start : start + batch_size])
            out.update(zip(texts[start : start + batch_size], vectors, strict=True))
    logger.info("queries only: %d passage vectors of the frozen base computed once", len(out))
    return out


def _labelled_pairs(triplets: Sequence[Triplet], seed: int) -> list[tuple[str, str, int]]:
    """Balanced reranker examples: each query with its passage (yes) and one negative (no)."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str, int]] = []
    for t in triplets:
        pairs.append((t.query, t.positive, 1))
        if t.negatives:
            pairs.append((t.query, rng.choice(t.negatives), 0))
    return pairs


def train_reranker(
    base_model: str,
    train: Sequence[Triplet],
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    dev: Sequence[Triplet] = (),
    instruction: InstructionLike = None,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    on_step: StepCallback | None = None,
    show_progress: bool | None = False,
) -> TrainReport:
    """Supervised LoRA training of a Qwen3-Reranker: ``-log p(yes|no | prompt)``.

    Each training query gives two examples, its passage (``yes``) and one of its hard
    negatives (``no``), so the labels are balanced: a model cannot lower the loss by
    answering ``yes`` to everything. The exact reranker template and the two LM-head rows
    the core scores with are used.

    Args:
        base_model: Hub id or folder of the base Qwen3-Reranker model.
        train: Training triplets (with at least one negative each).
        out: Folder of the epoch checkpoints; a run there before is resumed.
        config: The settings (``batch_size`` counts pairs; ``temperature``, ``margin`` and
            ``negatives`` do not apply).
        dev: Triplets for the dev loss.
        instruction: The reranker instruction (``None``: the default).
        device: Where to train.
        dtype: The base weights' dtype.
        on_step: Called as ``on_step(epoch, step, loss)`` after every step.
        show_progress: A progress bar per epoch.

    Returns:
        The :class:`TrainReport`.

    Raises:
        ValueError: If the base model is not Qwen3 or ``train`` is empty.
        ImportError: Without ``peft``.
    """
    config = config or TrainConfig()
    require_peft()
    pairs = _labelled_pairs(train, config.seed)
    if not pairs:
        raise ValueError("train is empty: no training triplets")
    model = AdaptedModel(
        "reranker",
        base_model,
        instruction=instruction,
        max_length=config.max_length,
        device=device,
        dtype=dtype,
    )
    model.add_lora(config)

    def step_loss(batch: list[tuple[str, str, int]]) -> tuple[torch.Tensor, int]:
        margin, used = model.yes_minus_no([(q, d) for q, d, _ in batch])
        labels = torch.tensor([y for _, _, y in batch], device=margin.device)
        return yes_no_loss(margin, torch.zeros_like(margin), labels), used

    expected = {
        "kind": "reranker",
        "base_model": base_model,
        "instruction": model.rerank_instruction,
        "config": config.to_dict(),
        "data": _fingerprint(train),
    }
    return _run(
        model=model,
        config=config,
        train=pairs,
        dev=_labelled_pairs(dev, config.seed),
        out=Path(out),
        step_loss=step_loss,
        expected=expected,
        on_step=on_step,
        show_progress=show_progress,
        desc="Training the reranker",
    )
