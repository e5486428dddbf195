"""The ONNX Runtime engine: the Qwen3 decoder stack exported once, int8-quantized, cached.

Only the transformer runs here. The graph takes left-padded ``input_ids``,
``attention_mask`` and ``position_ids`` (:func:`qwen3_rag.batching.left_pad`, the recipe's
layout) and returns the final-norm hidden state at the last position, ``(batch, hidden)``:
exactly what :func:`qwen3_rag._forward.final_hidden` returns in PyTorch. Tokenizing, the
``<|endoftext|>`` rule, the instruction and reranker templates, Matryoshka cut,
normalisation and the reranker's yes/no rows stay in the core, the same code for every
engine; the graph holds no LM head at all (the reranker's two rows are applied above it).

The export uses PyTorch's own exporter (``torch.onnx.export``) on the model's own forward;
``quantize="int8"`` then runs ONNX Runtime's dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``: signed int8 weights per output channel,
activations quantized per call; the fastest of the int8 variants measured in issue 18:
unsigned weights ran 1.9x float32 against 2.9-3.7x). Weights over 2 GB go to one external
data file beside the graph. A shared prefix (the reranker's query) is not reused here: the
graph has no key/value inputs, so each pair runs whole (see ``benchmarks/RESULTS.md``).

Needs the ``onnx`` extra: ``pip install "qwen3-rag[onnx]"`` (onnxruntime and onnx).

Example:
    >>> import torch
    >>> from transformers import Qwen3Config, Qwen3Model
    >>> cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64,
    ...                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    ...                   head_dim=8)
    >>> model = Qwen3Model(cfg).eval()
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "engine"
    >>> export_decoder(model, folder, quantize=None)  # doctest: +SKIP
    >>> OnnxDecoder(folder).final_hidden([[1, 2, 3], [4]], pad_id=0).shape  # doctest: +SKIP
    torch.Size([2, 32])
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen3_rag._extras import require
from qwen3_rag._files import replace_folder
from qwen3_rag.batching import left_pad
from qwen3_rag.loading import cpu_threads

__all__ = [
    "GRAPH",
    "OPSET",
    "OnnxDecoder",
    "check_installed",
    "export_decoder",
    "folder_bytes",
    "versions",
]

logger = logging.getLogger(__name__)

#: The graph file inside an artefact folder (its weights may sit beside it, ``GRAPH.data``).
GRAPH = "model.onnx"
#: The ONNX opset the graph is exported at.
OPSET = 18
_INPUTS = ("input_ids", "attention_mask", "position_ids")
_WHAT = "the ONNX engine"


def _onnxruntime() -> Any:
    return require("onnxruntime", "onnx", _WHAT)


def check_installed() -> None:
    """Raise the ``ImportError`` naming the ``onnx`` extra if its packages are missing."""
    _onnxruntime()
    require("onnx", "onnx", _WHAT)


def versions() -> dict[str, str]:
    """The versions of the engine's packages (``onnxruntime``, ``onnx``), or ``"missing"``."""
    out = {}
    for name in ("onnxruntime", "onnx"):
        try:
            out[name] = str(require(name, "onnx", _WHAT).__version__)
        except ImportError:
            out[name] = "missing"
    return out


class _LastHidden(torch.nn.Module):
    """The decoder's own forward, read at the last position (left padding puts it there)."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
        hidden: torch.Tensor = out.last_hidden_state[:, -1]
        return hidden


def _trace_inputs(vocab_size: int) -> tuple[torch.Tensor, ...]:
    """Two sequences of different lengths: the traced graph takes the padded-mask branch."""
    top = max(2, min(vocab_size, 4096))
    ids, mask, positions = left_pad(
        [[5 % top, 7 % top, 11 % top], [13 % top]], 0, torch.device("cpu")
    )
    return ids, mask, positions


def export_decoder(decoder: torch.nn.Module, folder: Path, *, quantize: str | None) -> None:
    """Export ``decoder`` (a float32 ``Qwen3Model`` on CPU) to ``folder``, quantized if asked.

    The folder is built beside its final place and swapped in when complete, so an
    interrupted export leaves no half artefact.

    Args:
        decoder: The decoder stack, float32, on CPU, in eval mode.
        folder: Where the artefact goes (replaced if present).
        quantize: ``None`` (float32 graph) or ``"int8"`` (dynamic int8).

    Raises:
        ImportError: If the ``onnx`` extra is missing.
    """
    ort_quant = require("onnxruntime.quantization", "onnx", _WHAT) if quantize else None
    require("onnx", "onnx", _WHAT)
    vocab = int(decoder.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    wrapper = _LastHidden(decoder).eval()
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        tmp.mkdir(parents=True, exist_ok=True)
        exported = tmp / ("float32.onnx" if quantize else GRAPH)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow
            torch.onnx.export(
                wrapper,
                _trace_inputs(vocab),
                str(exported),
                input_names=list(_INPUTS),
                output_names=["hidden"],
                dynamic_axes={**axes, "hidden": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        logger.info("exported the decoder to ONNX in %.1f s", time.perf_counter() - started)
        if ort_quant is not None:
            started = time.perf_counter()
            ort_quant.quantize_dynamic(
                str(exported),
                str(tmp / GRAPH),
                per_channel=True,
                weight_type=ort_quant.QuantType.QInt8,
                use_external_data_format=folder_bytes(tmp) > 1_800_000_000,
            )
            for leftover in tmp.iterdir():
                if leftover.name != GRAPH and not leftover.name.startswith(GRAPH):
                    leftover.unlink()
            logger.info("quantized the graph to int8 in %.1f s", time.perf_counter() - started)

    replace_folder(folder, build)


def folder_bytes(folder: Path) -> int:
    """Bytes the files of ``folder`` take (0 if it is missing)."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class OnnxDecoder:
    """An ONNX Runtime session over an exported decoder: token ids in, last hidden states out.

    Args:
        folder: An artefact folder written by :func:`export_decoder`.
        threads: Intra-op threads; ``None`` uses the cores this process may use.

    Raises:
        ImportError: If onnxruntime is missing.
        OSError: If the folder holds no graph.
    """

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        ort = _onnxruntime()
        graph = folder / GRAPH
        if not graph.is_file():
            raise FileNotFoundError(f"{folder}: no {GRAPH}: the engine artefact is incomplete")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.folder = folder
        self.session = ort.InferenceSession(
            str(graph), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.hidden_size = int(self.session.get_outputs()[0].shape[-1])

    def final_hidden(self, sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
        """Final-norm hidden state at the last token of each sequence: ``(batch, hidden)``.

        The same values as :func:`qwen3_rag._forward.final_hidden` in float32 (to rounding),
        or their int8 approximation.
        """
        ids, mask, positions = left_pad(sequences, pad_id, torch.device("cpu"))
        feed = {
            "input_ids": ids.numpy(),
            "attention_mask": mask.numpy(),
            "position_ids": positions.numpy(),
        }
        (hidden,) = self.session.run(["hidden"], feed)
        return torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))

    def weight_bytes(self) -> int:
        """Bytes of the artefact on disk (graph and weights)."""
        return folder_bytes(self.folder)
