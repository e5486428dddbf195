"""The ``qwen3-rag`` command: index a folder into an embedded Chroma store, then ask it.

``qwen3-rag index PATH...`` runs :func:`qwen3_rag.indexing.index_paths` (incremental, safe
to interrupt, one run per store folder at a time); ``qwen3-rag query "question"`` runs
:func:`qwen3_rag.store.search` (vector search, then Qwen3-Reranker); ``qwen3-rag eval
DATA_DIR`` runs :func:`qwen3_rag.evaluation.evaluate` (presets, Matryoshka sizes and reranking
measured on a BEIR-format folder); ``qwen3-rag adapt CORPUS... --llm SPEC --out DIR`` runs
:func:`qwen3_rag.adapt.adapt` (synthetic queries, LoRA training, a verified merged model, a
before/after table); ``qwen3-rag check-server`` compares a model server with the local
weights. No server runs: Chroma is embedded. The package only parses arguments, calls the
library and prints: results on stdout, logs and progress on stderr, every error as one line
naming the flag or environment variable to change.

One module per subcommand (``index``, ``query``, ``evaluate``, ``adapt``, ``check_server``,
``doctor``: its parser and its ``cmd_*`` function); what they share (option groups, flag ->
variable -> stored resolution, error translation, logging) is :mod:`qwen3_rag.cli._common`.

Example:
    >>> from qwen3_rag.cli import main
    >>> main(["index", "README.md", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
    >>> main(["query", "How do I run the tests?", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from qwen3_rag.cli import adapt, check_server, doctor, evaluate, index, query
from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    EMBED_URL_ENV,
    EXIT_DIFFERENT,
    LLM_SPEC_ENTRY_POINTS,
    LOCAL,
    RERANK_MODEL_ENV,
    RERANK_URL_ENV,
    CliError,
    model_errors,
    model_options,
    one_line,
    output_options,
    setup_logging,
    store_options,
)
from qwen3_rag.cli.adapt import cmd_adapt
from qwen3_rag.cli.check_server import cmd_check_server
from qwen3_rag.cli.doctor import cmd_doctor
from qwen3_rag.cli.evaluate import cmd_eval
from qwen3_rag.cli.index import cmd_index
from qwen3_rag.cli.query import cmd_query

__all__ = [
    "EMBED_MODEL_ENV",
    "EMBED_URL_ENV",
    "EXIT_DIFFERENT",
    "LLM_SPEC_ENTRY_POINTS",
    "LOCAL",
    "RERANK_MODEL_ENV",
    "RERANK_URL_ENV",
    "CliError",
    "build_parser",
    "cmd_adapt",
    "cmd_check_server",
    "cmd_doctor",
    "cmd_eval",
    "cmd_index",
    "cmd_query",
    "main",
    "model_errors",
    "model_options",
    "output_options",
    "setup_logging",
    "store_options",
]

logger = logging.getLogger("qwen3_rag.cli")  # also when run as python -m qwen3_rag.cli


def build_parser() -> argparse.ArgumentParser:
    """The ``qwen3-rag`` argument parser: one subcommand per module of this package.

    Example:
        >>> args = build_parser().parse_args(["query", "what is it?", "-k", "3"])
        >>> args.k, args.run.__name__
        (3, 'cmd_query')
    """
    common = [store_options(), model_options(), output_options()]
    parser = argparse.ArgumentParser(
        prog="qwen3-rag",
        description="Index documents into an embedded Chroma store with Qwen3-Embedding and "
        "query them with Qwen3-Reranker. No server, no API key.",
        epilog="Example: qwen3-rag index docs README.md && qwen3-rag query 'How do I install it?'",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{index,query,eval,adapt,check-server,doctor}"
    )
    index.add_parser(sub, common)
    query.add_parser(sub, common)
    evaluate.add_parser(sub)
    adapt.add_parser(sub)
    check_server.add_parser(sub)
    doctor.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qwen3-rag`` command; returns the exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 on an error (printed as one line), 130 when interrupted;
        ``check-server`` returns 3 when the server differs from the local weights.

    Example:
        >>> main(["query", "How do I install it?", "--json"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        logger.error("interrupted: what was written is kept; run the same command again to finish")
        return 130
    except CliError as exc:
        logger.error("error: %s", exc)
        return 1
    except Exception as exc:
        logger.debug("traceback", exc_info=True)
        known = (ValueError, TypeError, OSError)
        prefix = "" if isinstance(exc, known) else f"{type(exc).__name__}: "
        logger.error("error: %s%s", prefix, one_line(exc))
        return 1
