"""``qwen3-rag eval``: retrieval quality on a BEIR-format folder, one table."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    EMBED_URL_ENV,
    RERANK_MODEL_ENV,
    RERANK_URL_ENV,
    CliError,
    chroma_url,
    chroma_url_option,
    connect,
    long_document_options,
    model_errors,
    model_options,
    output_options,
    positive,
    precision_settings,
    server_url,
    store_errors,
    where,
)
from qwen3_rag.store import DEFAULT_COLLECTION

logger = logging.getLogger("qwen3_rag.cli")


def add_parser(sub: Any) -> None:
    """Register ``eval`` on the subcommands ``sub``."""
    from qwen3_rag.evaluation import DEFAULT_METRICS

    ev = sub.add_parser(
        "eval",
        parents=[
            model_options(vector_settings=False, several_precisions=True),
            output_options(),
        ],
        help="measure retrieval quality on a BEIR-format folder: presets, sizes, reranking",
        description="Embed the corpus once, search it exactly (or a Chroma collection with "
        "--db), optionally rerank, and print one table: configurations as rows, metrics as "
        "columns, the best value per column marked (*), each row tested against the first "
        "(+/-: significantly better/worse). Configurations: every --instruction x every "
        "--dimensions (x every --precision path, embedding side), and with --rerank each once "
        "more, reranked (on the first --precision path).",
        epilog="Example: qwen3-rag eval datasets/scifact --instruction web_search,fact_checking "
        "--dimensions 1024,256 --rerank --fetch-k 100",
    )
    ev.set_defaults(run=cmd_eval)
    ev.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    )
    ev.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    ev.add_argument(
        "--instruction",
        action="append",
        metavar="INSTRUCTIONS",
        help="query instructions to compare: comma-separated preset names (web_search,"
        "question_answering), none for raw queries, or one sentence per --instruction "
        "(default: web_search; with --db, the collection's)",
    )
    ev.add_argument(
        "--dimensions",
        metavar="D[,D...]",
        help="Matryoshka sizes to compare, comma-separated (default: the full size)",
    )
    ev.add_argument(
        "--rerank", action="store_true", help="add each configuration reranked (Qwen3-Reranker)"
    )
    ev.add_argument(
        "--fetch-k",
        type=positive,
        help="vector-search candidates handed to the reranker (default: -k)",
    )
    ev.add_argument(
        "-k",
        "--k",
        dest="k",
        type=positive,
        help="results kept per query (default: the largest metric cutoff, 100)",
    )
    ev.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated metrics: nDCG@k, Recall@k, MRR@k, MAP@k, P@k (default "
        f"{','.join(DEFAULT_METRICS)})",
    )
    store = ev.add_argument_group("store")
    store.add_argument(
        "--db", help="evaluate this Chroma store's collection (HNSW) instead of exact search"
    )
    chroma_url_option(store)
    store.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name, with --db (default {DEFAULT_COLLECTION})",
    )
    store.add_argument(
        "--id-key",
        help="with --db: the metadata key holding each record's corpus id (source: the file "
        "path, as `query` prints it); default: the record ids are the corpus ids",
    )
    out = ev.add_argument_group("results")
    out.add_argument("--runs", metavar="DIR", help="write each configuration's TREC run file here")
    out.add_argument("--cache-dir", help="vector cache folder (default ~/.cache/qwen3-rag/vectors)")
    out.add_argument("--no-cache", action="store_true", help="do not cache vectors on disk")
    out.add_argument(
        "--test",
        choices=["permutation", "t-test"],
        default="permutation",
        help="paired significance test against the first row (default permutation)",
    )
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    long_document_options(ev, several=True)


def _eval_instructions(values: list[str] | None) -> list[str | None]:
    """``--instruction`` values: preset lists split at commas, sentences kept whole."""
    from qwen3_rag.instructions import PRESETS

    if not values:
        return [None]  # the embedder's (or the collection's) own
    out: list[str | None] = []
    for value in values:
        pieces = [p.strip() for p in value.split(",")]
        if all(p in PRESETS or p.lower() == "none" for p in pieces):
            out.extend("" if p.lower() == "none" else p for p in pieces)
        else:
            out.append(value)
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag eval``; returns the exit status."""
    from qwen3_rag import (
        DEFAULT_EMBEDDING_MODEL,
        DEFAULT_RERANKER_MODEL,
        Embedder,
        Reranker,
        evaluation,
        store,
    )
    from qwen3_rag.loading import tune_cpu_threads

    logging.getLogger(evaluation.__name__).setLevel(logger.getEffectiveLevel())
    try:
        metrics = [evaluation.parse_metric(m).name for m in args.metrics.split(",") if m.strip()]
    except ValueError as exc:
        raise CliError(f"--metrics: {exc}") from None
    if not metrics:
        raise CliError("--metrics is empty")
    k = args.k or max(evaluation.parse_metric(m).k for m in metrics)
    if args.rerank and args.fetch_k is not None and args.fetch_k < k:
        raise CliError(
            f"--fetch-k ({args.fetch_k}) must be at least -k ({k}): the reranker must see the "
            f"results it keeps"
        )
    if args.fetch_k is not None and not args.rerank:
        logger.warning("--fetch-k is used only with --rerank")
    dimensions: list[int | None] = [None]
    if args.dimensions:
        try:
            dimensions = [int(d) for d in args.dimensions.split(",") if d.strip()]
        except ValueError:
            raise CliError(
                f"--dimensions {args.dimensions!r}: expected integers like 1024,256"
            ) from None
    url = chroma_url(args)
    if args.db and url is not None:
        raise CliError("pass either --db or --chroma-url (or QWEN3_RAG_CHROMA_URL), not both")
    in_store = bool(args.db) or url is not None
    if args.id_key and not in_store:
        raise CliError("--id-key applies only with --db or --chroma-url")
    if in_store and args.dimensions:
        raise CliError(
            "--dimensions cannot be used with --db or --chroma-url: the collection's size is fixed"
        )
    data = evaluation.load_beir(args.data_dir, split=args.split)
    logger.info(
        "%s, split %s: %d queries with relevant documents, %d documents",
        args.data_dir,
        args.split,
        len(data.queries),
        len(data.corpus),
    )
    model = args.embed_model or os.environ.get(EMBED_MODEL_ENV)
    collection = None
    revision = None
    served: dict[str, Any] = {}
    if in_store:
        if url is not None:
            client = connect(url)
        else:
            db = Path(args.db).expanduser()
            if not store.has_store(db):
                raise CliError(
                    f"--db {args.db}: no Chroma store there (run `qwen3-rag index` first)"
                )
            client = store.open_client(db)
        with store_errors(args):
            collection = store.find_collection(client, args.collection)
            if collection is None:
                names = sorted(c.name for c in client.list_collections())
                have = f" (it has: {', '.join(names)})" if names else ""
                raise CliError(f"--collection {args.collection!r}: not in {where(args)}{have}")
            persisted = store.collection_config(collection)
        model = model or persisted.get("model")
        revision = persisted.get("revision")
        served = {key: persisted.get(key) for key in ("base_url", "api_key_env")}
    precisions = [p.strip() for p in (args.precision or "").split(",") if p.strip()] or [None]
    if len(precisions) > 1 and in_store:
        raise CliError(
            "--precision with several paths compares them on exact search: drop --db / "
            "--chroma-url (a collection's vectors were made by one path)"
        )
    paths = [precision_settings(p, args.dtype) for p in precisions]
    tune_cpu_threads()
    embedder = Embedder(
        model or DEFAULT_EMBEDDING_MODEL,
        revision=revision,
        device=args.device,
        base_url=server_url(args.embed_url, EMBED_URL_ENV, served.get("base_url")),
        api_key_env=served.get("api_key_env"),
        **paths[0],
    )
    others = [
        Embedder(embedder.model, revision=revision, device=args.device, **path)
        for path in paths[1:]
    ]
    reranker = None
    if args.rerank:
        reranker = Reranker(
            args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL,
            device=args.device,
            base_url=server_url(args.rerank_url, RERANK_URL_ENV),
            **paths[0],
            window_overlap=args.window_overlap,
            max_windows=args.max_windows,
            max_length=args.rerank_max_length,
        )
    instructions = _eval_instructions(args.instruction)
    vector_rows = [
        evaluation.Configuration(instruction=i, dimensions=d)
        for i in instructions
        for d in dimensions
    ]
    compared = [
        evaluation.Configuration(instruction=c.instruction, dimensions=c.dimensions, model=other)
        for other in others
        for c in vector_rows
    ]
    modes = [m.strip() for m in args.long_documents.split(",") if m.strip()]
    if not modes or any(m not in ("truncate", "max") for m in modes):
        raise CliError(f"--long-documents {args.long_documents}: use truncate, max or both")
    if modes != ["truncate"] and not args.rerank:
        logger.warning("--long-documents is used only with --rerank")
    reranked = [
        evaluation.Configuration(
            instruction=c.instruction,
            dimensions=c.dimensions,
            rerank=True,
            fetch_k=args.fetch_k,
            long_documents=mode,
        )
        for c in vector_rows
        for mode in modes
        if args.rerank
    ]
    cache: Any = False if args.no_cache else args.cache_dir
    with model_errors("embedding", embedder.model):
        report = evaluation.evaluate(
            data,
            vector_rows + compared + reranked,
            embedder=embedder,
            reranker=reranker,
            metrics=metrics,
            k=k,
            collection=collection,
            id_key=args.id_key,
            cache=cache,
            runs_dir=args.runs,
            test=args.test,
            show_progress=None if not args.quiet else False,
        )
    if args.runs:
        logger.info("run files written to %s", args.runs)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.table() + "\n")
    return 0
