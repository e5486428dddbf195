"""``qwen3-rag index``: files and folders into a collection, incrementally.

Runs :func:`qwen3_rag.indexing.index_paths` (``--rebuild`` for a collection whose model's
weights changed), or its Ray embed step with ``--ray``, and prints one summary line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    EMBED_URL_ENV,
    LOCAL,
    CliError,
    chroma_url,
    connect,
    instruction_arg,
    model_errors,
    non_negative,
    one_line,
    positive,
    precision_settings,
    server_url,
    store_errors,
    where,
)

if TYPE_CHECKING:
    from qwen3_rag.indexing import IndexProgress, IndexStats

logger = logging.getLogger("qwen3_rag.cli")


def add_parser(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    """Register ``index`` on the subcommands ``sub``."""
    index = sub.add_parser(
        "index",
        parents=common,
        help="index text files (incremental; safe to interrupt and re-run)",
        description="Walk PATHs for text files, split them into token-sized chunks, embed them "
        "and upsert them. Unchanged files are skipped, changed files replaced, chunks of "
        "deleted files removed. Interrupting and re-running loses and duplicates nothing; a "
        "second run on the same --db waits for the first.",
    )
    index.set_defaults(run=cmd_index)
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    index.add_argument(
        "--chunk-size", type=positive, default=512, help="tokens per chunk (default 512)"
    )
    index.add_argument(
        "--chunk-overlap",
        type=non_negative,
        default=64,
        help="most tokens shared by neighbouring chunks (default 64)",
    )
    index.add_argument(
        "--batch-size",
        type=positive,
        default=32,
        help="chunks embedded and written per step (default 32)",
    )
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="embed everything again with the weights at hand, into a collection beside the "
        "old one that replaces it when complete: for a collection whose model's weights (or "
        "--dtype) changed since it was indexed, which is otherwise refused",
    )
    ray = index.add_argument_group('ray (pip install "qwen3-rag[ray]")')
    ray.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help=f"embed on Ray actors, one model each: no ADDRESS (or '{LOCAL}') starts Ray here "
        "with no cluster; 'auto' joins the cluster of `ray start`; or ray://HOST:10001",
    )
    ray.add_argument(
        "--ray-actors",
        type=positive,
        default=1,
        metavar="N",
        help="Ray actors (model copies) embedding in parallel (default 1)",
    )
    ray.add_argument(
        "--ray-cpus",
        type=float,
        metavar="N",
        help="CPUs per actor (default 1; torch uses that many threads)",
    )
    ray.add_argument(
        "--ray-gpus", type=float, metavar="N", help="GPUs per actor, e.g. 1 (default 0)"
    )


def cmd_index(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag index``; returns the exit status."""
    from tqdm.auto import tqdm

    from qwen3_rag import store
    from qwen3_rag.indexing import check_chunking, index_paths, resolve_paths
    from qwen3_rag.loading import tune_cpu_threads

    try:
        check_chunking(args.chunk_size, args.chunk_overlap)
    except ValueError as exc:
        raise CliError(str(exc).replace("chunk_", "--chunk-")) from None
    resolve_paths(args.paths)  # a missing path fails before any model loads
    ray_flags = [f for f in ("ray_actors", "ray_cpus", "ray_gpus") if _changed(args, f)]
    if args.ray is None and ray_flags:
        raise CliError(f"--{ray_flags[0].replace('_', '-')} applies only with --ray")
    if args.ray is not None:
        _check_ray()
    tune_cpu_threads()
    db = Path(args.db).expanduser()
    url = chroma_url(args)
    client = connect(url) if url is not None else None
    with store_errors(args):
        stored = None
        if client is not None:
            stored = store.stored_config(client, args.collection)
        elif store.has_store(db):
            stored = store.stored_config(store.open_client(db), args.collection)
        function = store.embedding_function_for(
            stored,
            model=args.embed_model or os.environ.get(EMBED_MODEL_ENV),
            instruction=instruction_arg(args.instruction),
            dimensions=args.dimensions,
            device=args.device,
            base_url=server_url(args.embed_url, EMBED_URL_ENV, (stored or {}).get("base_url")),
            **precision_settings(args.precision, args.dtype),
        )
        with (
            model_errors("embedding", function.embedder.model),
            tqdm(desc="Indexing", unit="chunk", disable=True if args.quiet else None) as bar,
        ):

            def progress(p: IndexProgress) -> None:
                bar.total = p.chunks_total
                bar.update(p.chunks_done - bar.n)

            stats = index_paths(
                args.paths,
                db=db,
                collection=args.collection,
                client=client,
                embedding_function=function,
                chunk_size=args.chunk_size,
                chunk_overlap=args.chunk_overlap,
                batch_size=args.batch_size,
                embed=_ray_step(args, function.embedder) if args.ray is not None else None,
                on_progress=progress,
                rebuild=args.rebuild,
            )
    sys.stdout.write(_summary(stats, args) + "\n")
    return 0


def _changed(args: argparse.Namespace, name: str) -> bool:
    defaults = {"ray_actors": 1, "ray_cpus": None, "ray_gpus": None}
    return bool(getattr(args, name) != defaults[name])


def _check_ray() -> None:
    """One line naming the extra when Ray is not installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise CliError(
            '--ray needs Ray: pip install "qwen3-rag[ray]" (or drop --ray to embed here)'
        ) from None


def _ray_step(args: argparse.Namespace, embedder: Any) -> Any:
    """Start (or join) Ray as ``--ray`` says; the indexer's embed step on its actors."""
    import ray.data

    from qwen3_rag.distributed import init_ray, ray_embed_step

    level = logging.DEBUG if args.verbose else logging.ERROR  # -v shows Ray's own logs
    for name in ("ray", "ray.data"):  # our bar shows progress; Ray's notes are noise here
        logging.getLogger(name).setLevel(level)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        init_ray(args.ray, log_to_driver=bool(args.verbose), logging_level=level)
    except ConnectionError as exc:
        raise CliError(
            f"--ray {args.ray}: no Ray cluster answers there ({one_line(exc)}); drop ADDRESS "
            "to start Ray here"
        ) from exc
    return ray_embed_step(
        embedder, concurrency=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus
    )


def _summary(stats: IndexStats, args: argparse.Namespace) -> str:
    return (
        f"{stats.chunks_embedded} chunks embedded, {stats.chunks_reused} reused, "
        f"{stats.chunks_removed} removed; "
        f"{stats.files} text files ({stats.files_unchanged} unchanged, {stats.files_changed} new "
        f"or changed), {stats.files_deleted} deleted, {stats.files_binary} binary skipped; "
        f"{where(args)} now holds {stats.chunks_stored} chunks in {args.collection!r}"
    )
