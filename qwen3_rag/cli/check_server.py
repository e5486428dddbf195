"""``qwen3-rag check-server``: a model server against the local weights."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    EMBED_URL_ENV,
    EXIT_DIFFERENT,
    RERANK_MODEL_ENV,
    RERANK_URL_ENV,
    CliError,
    output_options,
    positive,
    server_url,
)


def add_parser(sub: Any) -> None:
    """Register ``check-server`` on the subcommands ``sub``."""
    from qwen3_rag.server_check import MAX_SCORE_DIFF, MIN_COSINE, PROBE_MAX_LENGTH

    check = sub.add_parser(
        "check-server",
        parents=[output_options()],
        help="compare a model server with local weights on a fixed probe set",
        description="Embed and rerank a fixed probe set (queries and documents with "
        "instructions, Matryoshka sizes, a long document) with the local weights and through "
        "model servers, and print the largest differences. Exit status 0 when the servers "
        f"agree within the tolerances, {EXIT_DIFFERENT} when they do not, 1 on an error.",
        epilog="Example: qwen3-rag check-server --embed-url http://localhost:8000 "
        "--rerank-url http://localhost:8001",
    )
    check.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="one server for both models (default: --embed-url / --rerank-url, else "
        f"${EMBED_URL_ENV} / ${RERANK_URL_ENV})",
    )
    check.add_argument("--embed-url", help="the embedding server (checked when given)")
    check.add_argument("--rerank-url", help="the reranking server (checked when given)")
    check.add_argument(
        "--embed-model",
        help=f"served name and local weights of the embedding model (default: "
        f"${EMBED_MODEL_ENV}, else Qwen/Qwen3-Embedding-0.6B)",
    )
    check.add_argument(
        "--rerank-model",
        help=f"served name and local weights of the reranker (default: ${RERANK_MODEL_ENV}, "
        f"else Qwen/Qwen3-Reranker-0.6B)",
    )
    check.add_argument(
        "--max-length",
        type=positive,
        default=PROBE_MAX_LENGTH,
        help=f"max_length of both sides; the long probe document is cut at it (default "
        f"{PROBE_MAX_LENGTH})",
    )
    check.add_argument(
        "--min-cosine",
        type=float,
        default=MIN_COSINE,
        help=f"smallest cosine allowed between a local and a served vector (default {MIN_COSINE})",
    )
    check.add_argument(
        "--max-score-diff",
        type=float,
        default=MAX_SCORE_DIFF,
        help=f"largest reranker score difference allowed (default {MAX_SCORE_DIFF})",
    )
    check.add_argument("--device", help="device of the local side (default: cuda, mps, cpu)")
    check.add_argument("--dtype", help="dtype of the local side (default: float32 on CPU)")
    check.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request (default 60)"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=cmd_check_server)


def cmd_check_server(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag check-server``; returns the exit status."""
    from qwen3_rag import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANKER_MODEL
    from qwen3_rag.server_check import check_server

    embed_url = args.embed_url or args.url
    rerank_url = args.rerank_url or args.url
    if embed_url is None and rerank_url is None:
        embed_url = server_url(None, EMBED_URL_ENV)
        rerank_url = server_url(None, RERANK_URL_ENV)
    if embed_url is None and rerank_url is None:
        raise CliError(
            f"no server to check: pass URL, --embed-url or --rerank-url (or set "
            f"{EMBED_URL_ENV} / {RERANK_URL_ENV})"
        )
    report = check_server(
        embed_url=embed_url,
        rerank_url=rerank_url,
        embedding_model=args.embed_model
        or os.environ.get(EMBED_MODEL_ENV)
        or DEFAULT_EMBEDDING_MODEL,
        reranker_model=args.rerank_model
        or os.environ.get(RERANK_MODEL_ENV)
        or DEFAULT_RERANKER_MODEL,
        max_length=args.max_length,
        min_cosine=args.min_cosine,
        max_score_diff=args.max_score_diff,
        device=args.device,
        dtype=args.dtype,
        timeout=args.timeout,
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.table() + "\n")
    return 0 if report.ok else EXIT_DIFFERENT
