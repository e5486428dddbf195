"""``qwen3-rag adapt``: adapt Qwen3-Embedding to a corpus, from the command line.

The training and data flags are derived from :class:`~qwen3_rag.adapt.AdaptConfig` and
:class:`~qwen3_rag.adapt.TrainConfig`: each flag's default is its field's default and its help
is the field's description in the class's ``Attributes`` section, so a setting is documented
once, where it is defined. :data:`SETTINGS` lists which field each flag sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from qwen3_rag.adapt.pipeline import STAGES, AdaptConfig
from qwen3_rag.adapt.train import TrainConfig
from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    LLM_SPEC_ENTRY_POINTS,
    RERANK_MODEL_ENV,
    CliError,
    chroma_url,
    chroma_url_option,
    connect,
    fraction,
    instruction_arg,
    model_setting,
    non_negative,
    one_line,
    output_options,
    pair,
    positive,
    store_errors,
    where,
)
from qwen3_rag.store import DEFAULT_COLLECTION

logger = logging.getLogger("qwen3_rag.cli")


def field_help(cls: type) -> dict[str, str]:
    """Each field's description, from a dataclass's Google-style ``Attributes:`` section.

    Example:
        >>> field_help(TrainConfig)["lora_r"]
        'LoRA rank.'
    """
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    found: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            name = entry[1]
            found[name] = entry[2]
        elif name is not None and line.startswith("        "):
            found[name] += " " + line.strip()
        elif line.strip():
            break
    return {k: re.sub(r"``([^`]*)``", r"\1", v) for k, v in found.items()}


def _threshold(value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'none'") from None


def _languages(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())


@dataclass(frozen=True)
class Setting:
    """One flag that sets a field of :class:`AdaptConfig` (``"adapt"``) or :class:`TrainConfig`.

    Attributes:
        flag: The flag, e.g. ``"--chunk-size"``.
        group: The help section it is listed in.
        owners: The configs it sets (``"adapt"``, ``"train"``, or both).
        name: The field it sets.
        options: Further ``add_argument`` keywords (``type``, ``metavar``, ``choices``).
    """

    flag: str
    group: str
    owners: tuple[str, ...]
    name: str
    options: dict[str, Any] = field(default_factory=dict)


#: Every training and data flag, and the field it sets.
SETTINGS = (
    Setting("--chunk-size", "data", ("adapt",), "chunk_size", {"type": positive}),
    Setting("--chunk-overlap", "data", ("adapt",), "chunk_overlap", {"type": non_negative}),
    Setting("--languages", "data", ("adapt",), "languages", {"type": _languages}),
    Setting(
        "--query-words",
        "data",
        ("adapt",),
        "query_lengths",
        {"type": pair(int), "metavar": "MIN,MAX"},
    ),
    Setting("--retries", "data", ("adapt",), "retries", {"type": non_negative}),
    Setting("--threshold", "data", ("adapt",), "threshold", {"type": _threshold}),
    Setting(
        "--rerank-band",
        "data",
        ("adapt",),
        "rerank_band",
        {"type": pair(float), "metavar": "LOW,HIGH"},
    ),
    Setting("--test-fraction", "data", ("adapt",), "test_fraction", {"type": fraction}),
    Setting("--dev-fraction", "data", ("adapt",), "dev_fraction", {"type": fraction}),
    Setting("--negatives", "data", ("train",), "negatives", {"type": non_negative}),
    Setting("--mine-margin", "data", ("adapt",), "mine_margin", {"type": float}),
    Setting("--epochs", "training", ("train",), "epochs", {"type": positive}),
    Setting("--batch-size", "training", ("train",), "batch_size", {"type": positive}),
    Setting("--lr", "training", ("train",), "learning_rate", {"type": float}),
    Setting("--lora-r", "training", ("train",), "lora_r", {"type": positive}),
    Setting("--lora-alpha", "training", ("train",), "lora_alpha", {"type": positive}),
    Setting("--temperature", "training", ("train",), "temperature", {"type": float}),
    Setting("--max-length", "training", ("train",), "max_length", {"type": positive}),
    Setting("--gradient-checkpointing", "training", ("train",), "gradient_checkpointing"),
    Setting("--queries-only", "training", ("adapt",), "queries_only"),
    Setting("--train-reranker", "training", ("adapt",), "train_reranker"),
    Setting("--merge", "training", ("adapt",), "merge", {"choices": ("all", "last")}),
    Setting("--seed", "training", ("adapt", "train"), "seed", {"type": non_negative}),
)

_CONFIGS: dict[str, type] = {"adapt": AdaptConfig, "train": TrainConfig}


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _add_setting(group: Any, setting: Setting) -> None:
    cls = _CONFIGS[setting.owners[0]]
    spec = next(f for f in dataclasses.fields(cls) if f.name == setting.name)
    default = spec.default
    text = field_help(cls)[setting.name].replace("%", "%%")
    if isinstance(default, bool):
        group.add_argument(setting.flag, dest=setting.name, action="store_true", help=text)
        return
    group.add_argument(
        setting.flag,
        dest=setting.name,
        default=default,
        help=f"{text} (default {_shown(default)})",
        **setting.options,
    )


def add_parser(sub: Any) -> None:
    """Register ``adapt`` on the subcommands ``sub``."""
    ad = sub.add_parser(
        "adapt",
        parents=[output_options()],
        help="adapt Qwen3-Embedding to your documents (synthetic queries, LoRA, merge, eval)",
        description="Chunk the documents like `index`, have an LLM write a query per chunk, "
        "filter the pairs, mine hard negatives, train a LoRA adapter, merge the epoch "
        "checkpoints (slerp) into a verified model folder OUT/model, and compare it with the "
        "base model on held-out chunks. Interrupted? Run the same command again: finished "
        "stages are skipped, synthesis and training resume.",
        epilog="Example: qwen3-rag adapt docs/ --llm ollama:qwen3:4b --out adapted",
    )
    ad.set_defaults(run=cmd_adapt)
    ad.add_argument("paths", nargs="+", metavar="CORPUS", help="files or folders of text")
    ad.add_argument(
        "--llm",
        help="the LLM that writes the queries: a local chat-model folder (transformers), or "
        "a LangChain init_chat_model spec such as ollama:qwen3:4b or openai:gpt-4o-mini "
        '(pip install "qwen3-rag[langchain]" and the provider package); needed to synthesize',
    )
    ad.add_argument("--out", required=True, help="output folder (resumed when it holds a run)")
    ad.add_argument(
        "--stage",
        choices=STAGES,
        help="run one stage again: synthesize retries the passages that failed, train "
        "starts over, the others recompute",
    )
    ad.add_argument(
        "--overwrite", action="store_true", help="delete a previous run's outputs in --out first"
    )
    models = ad.add_argument_group("models")
    models.add_argument(
        "--embed-model",
        help=f"base Qwen3-Embedding hub id or folder (default: ${EMBED_MODEL_ENV}, else "
        "Qwen/Qwen3-Embedding-0.6B)",
    )
    models.add_argument(
        "--rerank-model",
        help="Qwen3-Reranker hub id or folder: checks mined negatives (and enables "
        "--rerank-band, --train-reranker); default none",
    )
    models.add_argument(
        "--instruction",
        help="query instruction trained and evaluated with: a preset name, a sentence, or "
        "none for raw queries (default web_search); use the same one with the adapted model",
    )
    models.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    models.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    groups = {"data": ad.add_argument_group("data"), "training": ad.add_argument_group("training")}
    groups["data"].add_argument(
        "--workers",
        type=positive,
        help="LLM calls in flight (default 8 for a chat-model spec, 1 for a local folder)",
    )
    for setting in SETTINGS:
        _add_setting(groups[setting.group], setting)
    index = ad.add_argument_group(
        "an existing index (with --queries-only: record the adapted query model in it)"
    )
    index.add_argument(
        "--db",
        help="a store folder whose collection the base model indexed: its questions are then "
        "embedded by the adapted query model, nothing re-embedded",
    )
    chroma_url_option(index)
    index.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"the collection, with --db or --chroma-url (default {DEFAULT_COLLECTION})",
    )
    ad.add_argument("--json", action="store_true", help="print the summary as JSON")


def _llm(spec: str, args: argparse.Namespace) -> Any:
    """``--llm``: a local chat-model folder, else a LangChain ``init_chat_model`` spec."""
    if Path(spec).expanduser().is_dir():
        from qwen3_rag.adapt.llm import TransformersChatLLM

        return TransformersChatLLM(
            str(Path(spec).expanduser()), device=args.device, dtype=args.dtype
        )
    # The adapter package registers its spec reader as an entry point: the core imports none.
    readers = list(entry_points(group=LLM_SPEC_ENTRY_POINTS))
    try:
        if not readers:
            raise ImportError("no chat-model spec reader is installed")
        llm_from_spec = readers[0].load()
    except ImportError as exc:
        raise CliError(
            f"--llm {spec}: a chat-model spec needs LangChain: pip install "
            f'"qwen3-rag[langchain]" ({exc})'
        ) from exc
    try:
        return llm_from_spec(spec)
    except ImportError as exc:
        raise CliError(f"--llm {spec}: {one_line(exc)}") from exc
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CliError(
            f"--llm {spec}: not a folder, and LangChain cannot use it as a chat-model spec "
            f"(provider:model, e.g. ollama:qwen3:4b): {first}"
        ) from exc


def _config(args: argparse.Namespace) -> AdaptConfig:
    """The :class:`AdaptConfig` the flags ask for (the fields of :data:`SETTINGS` included)."""
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL

    values: dict[str, dict[str, Any]] = {"adapt": {}, "train": {}}
    for setting in SETTINGS:
        for owner in setting.owners:
            values[owner][setting.name] = getattr(args, setting.name)
    needs_reranker = args.rerank_band is not None or args.train_reranker
    default_reranker = DEFAULT_RERANKER_MODEL if needs_reranker else None
    local = args.llm is not None and Path(args.llm).expanduser().is_dir()
    return AdaptConfig(
        base_model=model_setting(args.embed_model, EMBED_MODEL_ENV) or DEFAULT_EMBEDDING_MODEL,
        reranker_model=args.rerank_model
        or (model_setting(None, RERANK_MODEL_ENV) or default_reranker if needs_reranker else None),
        instruction=instruction_arg(args.instruction),
        workers=args.workers or (1 if local else 8),
        train=TrainConfig(**values["train"]),
        device=args.device,
        dtype=args.dtype,
        show_progress=None if not args.quiet else False,
        **values["adapt"],
    )


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag adapt``; returns the exit status."""
    from qwen3_rag.adapt import adapt
    from qwen3_rag.loading import tune_cpu_threads

    index = args.db is not None or chroma_url(args) is not None
    if index and not args.queries_only:
        raise CliError(
            "--db / --chroma-url take the adapted model as a query model, which needs "
            "--queries-only; a fully adapted model re-embeds the documents: run `qwen3-rag "
            "index PATH... --embed-model OUT/model --rebuild` afterwards"
        )
    tune_cpu_threads()
    config = _config(args)
    llm = _llm(args.llm, args) if args.llm else None
    summary = adapt(
        args.paths, llm=llm, out=args.out, config=config, stage=args.stage, overwrite=args.overwrite
    )
    if index and summary.model is not None:
        _use_in_index(args, str(summary.model))
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(summary.table() + "\n")
    return 0


def _use_in_index(args: argparse.Namespace, model: str) -> None:
    """Record the adapted query model in the collection (``--db`` / ``--chroma-url``)."""
    from qwen3_rag import store

    url = chroma_url(args)
    with store_errors(args):
        if url is not None:
            client = connect(url)
        else:
            if not store.has_store(args.db):
                raise CliError(f"--db {args.db}: no store there; index it with qwen3-rag index")
            client = store.open_client(args.db)
        store.set_query_model(client, args.collection, model)
    logger.info(
        "collection %r in %s: questions are now embedded by %s (documents as indexed)",
        args.collection,
        where(args),
        model,
    )
