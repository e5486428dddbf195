"""``qwen3-rag doctor``: this machine's CPU, the paths it can run, and their measured fidelity."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from qwen3_rag.cli._common import EMBED_MODEL_ENV, RERANK_MODEL_ENV, CliError, output_options

logger = logging.getLogger("qwen3_rag.cli")


def add_parser(sub: Any) -> None:
    """Register ``doctor`` on the subcommands ``sub``."""
    from qwen3_rag.cpu import CPU_PATHS

    doctor = sub.add_parser(
        "doctor",
        parents=[output_options()],
        help="show the CPU's instructions, the engines, what precision='fast' picks here, and "
        "the measured fidelity of each path",
        description="Print this machine's speed-relevant CPU flags, the engines and precisions "
        "installed, what precision='fast' chooses here and why, and every fidelity record in "
        "the engine cache (min cosine / largest score difference against float32 on a fixed "
        "probe, with the probe's speed). With --measure, first load the given models in each "
        "path, which measures and stores the records.",
        epilog="Example: qwen3-rag doctor --measure --embed-model Qwen/Qwen3-Embedding-0.6B",
    )
    doctor.add_argument(
        "--measure",
        nargs="?",
        const=",".join(p for p in CPU_PATHS if p != "exact"),
        metavar="PATHS",
        help=f"load the models in these paths first, comma-separated (default: all of "
        f"{', '.join(p for p in CPU_PATHS if p != 'exact')}); paths whose packages are "
        f"missing are skipped with the install line",
    )
    doctor.add_argument(
        "--embed-model",
        help=f"embedding model to measure (default: ${EMBED_MODEL_ENV}; none: not measured)",
    )
    doctor.add_argument(
        "--rerank-model",
        help=f"reranker to measure (default: ${RERANK_MODEL_ENV}; none: not measured)",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=cmd_doctor)


def _measure(paths: list[str], models: dict[str, str]) -> list[str]:
    """Load each model in each path (records are measured and stored); the problems met."""
    from qwen3_rag import Embedder, Reranker
    from qwen3_rag.cpu import CPU_PATHS
    from qwen3_rag.errors import FidelityError

    unknown = [p for p in paths if p not in CPU_PATHS]
    if unknown:
        raise CliError(f"--measure: unknown path {unknown[0]!r}; use {', '.join(CPU_PATHS)}")
    problems = []
    classes = {"embedder": Embedder, "reranker": Reranker}
    for kind, model in models.items():
        for path in paths:
            try:
                classes[kind](model, device="cpu", **CPU_PATHS[path]).load()
            except FidelityError:
                pass  # the record is stored and listed below
            except ImportError as exc:
                problems.append(f"{kind} {path}: {exc}")
    return problems


def report(problems: list[str] | None = None) -> dict[str, Any]:
    """What ``doctor`` prints, as a JSON-ready object."""
    import torch

    from qwen3_rag.cpu import choose_fast, cpu_features, onnx_ready
    from qwen3_rag.fidelity import engine_cache, records
    from qwen3_rag.loading import cpu_threads, fast_int8_cpu
    from qwen3_rag.onnx_engine import versions

    cpu = cpu_features()
    choice = choose_fast("cpu", torch_int8=fast_int8_cpu())
    try:
        import torchao

        torchao_version = str(torchao.__version__)
    except ImportError:
        torchao_version = "missing"
    onnx = versions() if onnx_ready() else {"onnxruntime": "missing", "onnx": "missing"}
    return {
        "cpu": cpu.summary(),
        "usable_cores": cpu_threads(),
        "torch": torch.__version__,
        "torch_bfloat16_native": cpu.bf16_matmul,
        "torch_int8_fast": fast_int8_cpu(),
        "torchao": torchao_version,
        **onnx,
        "fast": {
            "engine": choice.engine,
            "dtype": choice.dtype,
            "quantize": choice.quantize,
            "reason": choice.reason,
        },
        "engine_cache": str(engine_cache()),
        "records": [r.to_json() | {"ok": r.ok, "speedup": r.speedup} for r in records()],
        "problems": problems or [],
    }


def _table(data: dict[str, Any]) -> str:
    fast = data["fast"]
    what = " ".join(
        part
        for part in (fast["engine"], fast["quantize"] or fast["dtype"] or "default dtype")
        if part
    )
    lines = [
        f"CPU: {data['cpu']} ({data['usable_cores']} usable cores)",
        f"torch {data['torch']}: bfloat16 "
        f"{'native' if data['torch_bfloat16_native'] else 'emulated (slow)'}, int8 "
        f"{'fast (VNNI/AMX)' if data['torch_int8_fast'] else 'slow (no VNNI/AMX)'}; "
        f"torchao {data['torchao']}",
        f"ONNX Runtime: {data['onnxruntime']}"
        + ("" if data["onnxruntime"] != "missing" else ' (pip install "qwen3-rag[onnx]")'),
        f"precision='fast' here: {what}: {fast['reason']}",
        f"engine cache: {data['engine_cache']}",
        "",
    ]
    if not data["records"]:
        lines.append("no fidelity record yet (qwen3-rag doctor --measure --embed-model M)")
    else:
        lines += [
            "| model identity | kind | metric | value | floor | verdict | probe vs float32 |",
            "|---|---|---|---:|---:|---|---:|",
        ]
        for r in data["records"]:
            lines.append(
                f"| {r['identity']} | {r['kind']} | {r['metric']} | {r['value']:.5f} | "
                f"{r['floor']} | {'ok' if r['ok'] else 'refused'} | {r['speedup']:.2f}x |"
            )
    lines += [f"skipped: {p}" for p in data["problems"]]
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag doctor``; returns the exit status."""
    problems: list[str] = []
    if args.measure:
        models = {
            kind: model
            for kind, model in (
                ("embedder", args.embed_model or os.environ.get(EMBED_MODEL_ENV)),
                ("reranker", args.rerank_model or os.environ.get(RERANK_MODEL_ENV)),
            )
            if model
        }
        if not models:
            raise CliError(
                f"--measure needs a model: pass --embed-model and/or --rerank-model (or set "
                f"{EMBED_MODEL_ENV} / {RERANK_MODEL_ENV})"
            )
        paths = [p.strip() for p in args.measure.split(",") if p.strip()]
        problems = _measure(paths, models)
    data = report(problems)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(_table(data) + "\n")
    return 0
