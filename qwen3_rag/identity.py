"""Which weights made a vector: the identity of a model, and what kind of checkpoint it is.

A vector is only comparable with another one made by the same weights, the same engine and
the same precision. :class:`ModelIdentity` says which those were, and every place that stores
or reuses vectors keys on it: the indexer's reuse keys and the collection's stored settings
(:mod:`qwen3_rag.indexing`, :mod:`qwen3_rag.store`, :mod:`qwen3_rag.chroma`), the evaluation
vector cache and the adapt caches.

The weights part (:func:`weights_id`) is

* for a hub id, the snapshot commit the hub cache resolves the revision to (``hub:<commit>``):
  the hub's own content address, so a ``main`` that moves to a new snapshot changes it;
* for a local folder, a fingerprint of its contents (``sha256:<hex>``): the whole of
  ``config.json`` and the tokenizer files, and for each ``*.safetensors`` file its size, its
  header (every tensor's name, dtype, shape and offsets) and 4 KiB at the start, middle and
  end of every tensor's bytes. Retraining, a merged LoRA, a dtype conversion or a copied-in
  checkpoint all change sampled bytes of every tensor they touch, so they change the
  fingerprint; a change confined to a few rows of one tensor can go unseen. It reads about
  12 KiB per tensor (a few MB for the 0.6B model, milliseconds), never the gigabytes, and
  does not depend on the folder's path or file times (a copied or moved folder keeps its
  identity).

:func:`inspect_checkpoint` reads the same headers to tell what a checkpoint is: a bare
Qwen3 decoder (what Qwen3-Embedding ships: weights without the ``model.`` prefix and no LM
head), a causal LM (Qwen3-Reranker, or a chat model: ``model.``-prefixed weights, with an LM
head or tied embeddings), or a sequence-classification conversion (a ``score`` head).

Example:
    >>> from qwen3_rag.identity import ModelIdentity
    >>> a = ModelIdentity("hub:0123abcd", "torch", "float32")
    >>> a.key
    'hub:0123abcd|torch|float32'
    >>> ModelIdentity.from_dict(a.to_dict()) == a
    True
    >>> a.changes(ModelIdentity("hub:0123abcd", "torch", "bfloat16"))
    ['precision float32 -> bfloat16']
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qwen3_rag._files import json_object
from qwen3_rag.errors import ModelKindError, QueryModelError
from qwen3_rag.loading import ModelSource

__all__ = [
    "ADAPT_METADATA",
    "SEQ_CLS_FORMAT",
    "Checkpoint",
    "CheckpointKind",
    "ModelIdentity",
    "adapted_from",
    "check_kind",
    "check_query_model",
    "folder_fingerprint",
    "inspect_checkpoint",
    "model_folder",
    "stored_tensor",
    "weights_id",
]

logger = logging.getLogger(__name__)

#: Files besides the weights whose whole content is part of a folder's fingerprint: the
#: configuration and everything that decides the token ids.
IDENTITY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
)
#: The file an adapted model folder records its base in (written by ``qwen3-rag adapt``).
ADAPT_METADATA = "qwen3_rag_adapt.json"
#: Bytes hashed at the start, the middle and the end of every tensor.
SAMPLE_BYTES = 4096
#: A safetensors header larger than this is not a header (a damaged or foreign file).
MAX_HEADER_BYTES = 100 * 1024 * 1024

CheckpointKind = Literal["embedding", "causal-lm", "sequence-classification", "unknown"]


@dataclass(frozen=True)
class ModelIdentity:
    """The weights, engine and precision that make a vector: equal identities, equal vectors.

    Attributes:
        weights: ``"hub:<commit>"`` for a hub snapshot, ``"sha256:<hex>"`` for a local
            folder's contents (see the module docstring), ``"served:<name>"`` for a model
            known only by the name a server gave it.
        engine: What computes the forward pass: ``"torch"``, ``"onnx"`` (ONNX Runtime) or
            ``"server"``.
        precision: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"int8"``.
    """

    weights: str
    engine: str = "torch"
    precision: str = "float32"

    @property
    def key(self) -> str:
        """One string for all three parts (what caches and reuse keys hash)."""
        return f"{self.weights}|{self.engine}|{self.precision}"

    def to_dict(self) -> dict[str, str]:
        """A JSON-serialisable form; :meth:`from_dict` reads it back."""
        return {"weights": self.weights, "engine": self.engine, "precision": self.precision}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIdentity:
        """Read :meth:`to_dict`'s output.

        Raises:
            ValueError: If a part is missing or not a string.
        """
        parts = {k: data.get(k) for k in ("weights", "engine", "precision")}
        bad = [k for k, v in parts.items() if not isinstance(v, str) or not v]
        if bad:
            raise ValueError(f"a stored model identity lacks {', '.join(bad)}: {dict(data)!r}")
        return cls(str(parts["weights"]), str(parts["engine"]), str(parts["precision"]))

    def changes(self, now: ModelIdentity) -> list[str]:
        """What makes vectors of ``self`` incomparable with vectors of ``now``.

        Different weights always do; a different precision does when both are known (a
        server's is not); so does a different local engine (``"torch"`` vs ``"onnx"``: their
        kernels, and their int8 schemes, round differently), while a server's vectors are
        comparable with local ones (the same recipe; its precision is its own).

        Returns:
            ``"part old -> new"`` phrases; empty when the vectors are comparable.
        """
        found = []
        if self.weights != now.weights:
            found.append(f"weights {self.weights} -> {now.weights}")
        if self.precision != now.precision and "unknown" not in (self.precision, now.precision):
            found.append(f"precision {self.precision} -> {now.precision}")
        if self.engine != now.engine and "server" not in (self.engine, now.engine):
            found.append(f"engine {self.engine} -> {now.engine}")
        return found

    def settings(self) -> dict[str, str]:
        """The model-class settings that compute vectors of this identity locally.

        Empty for float32 PyTorch and for a server (the defaults); otherwise the ``dtype``,
        ``quantize`` and ``engine`` arguments of :class:`~qwen3_rag.Embedder`, so that a
        collection reopens with the path it was indexed with.

        Example:
            >>> ModelIdentity("sha256:ab", "onnx", "int8").settings()
            {'engine': 'onnx', 'quantize': 'int8'}
            >>> ModelIdentity("sha256:ab", "torch", "bfloat16").settings()
            {'dtype': 'bfloat16'}
        """
        out: dict[str, str] = {}
        if self.engine == "onnx":
            out["engine"] = "onnx"
        elif self.engine != "torch":
            return out
        if self.precision == "int8":
            out["quantize"] = "int8"
        elif self.precision in ("bfloat16", "float16"):
            out["dtype"] = self.precision
        return out

    def __str__(self) -> str:
        return f"{self.weights} ({self.engine}, {self.precision})"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`inspect_checkpoint` found in a model's files.

    Attributes:
        kind: ``"embedding"`` (a bare Qwen3 decoder, as Qwen3-Embedding ships), ``"causal-lm"``
            (a decoder with an LM head: Qwen3-Reranker or a chat model),
            ``"sequence-classification"`` (a ``score`` head), or ``"unknown"`` (no
            safetensors headers to read).
        lm_head: Whether the files hold an LM head, or tie it to the input embeddings.
        score_rows: Output rows of a ``score`` head (sequence classification), else ``None``.
        score_head: The name of that head's weight (``"score.weight"`` as transformers'
            ``Qwen3ForSequenceClassification`` writes it, or ``"classifier.weight"``), else
            ``None``.
    """

    kind: CheckpointKind
    lm_head: bool
    score_rows: int | None = None
    score_head: str | None = None


def model_folder(source: ModelSource) -> Path | None:
    """The folder holding the model's files: the local folder, or the cached hub snapshot.

    Returns ``None`` for a hub id that is not in the local cache yet.
    """
    if source.is_local:
        folder = Path(source.location)
        return folder if folder.is_dir() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            source.model, "config.json", cache_dir=source.cache_dir, revision=source.revision
        )
    except Exception as exc:  # an unusual hub setup: no snapshot to read
        logger.debug("%s: hub cache lookup failed: %s", source.model, exc)
        return None
    return Path(found).parent if isinstance(found, str) else None


def _header(path: Path) -> tuple[bytes, dict[str, Any], int]:
    """A safetensors file's raw header, parsed header and where its data starts."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: not a safetensors file (header of {size} bytes)")
        raw = f.read(size)
    return raw, json_object(raw, f"{path}: not a safetensors file: its header"), 8 + size


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())


def folder_fingerprint(folder: str | Path) -> str:
    """The content fingerprint of a model folder (see the module docstring).

    Args:
        folder: A folder with ``config.json``, tokenizer files and ``*.safetensors``.

    Returns:
        ``"sha256:"`` and 32 hex digits.

    Raises:
        ValueError: If a ``.safetensors`` file is damaged.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "config.json").write_text("{}")
        >>> folder_fingerprint(d) == folder_fingerprint(d)
        True
    """
    root = Path(folder)
    h = hashlib.sha256(b"qwen3-rag identity 1\0")
    for name in IDENTITY_FILES:
        path = root / name
        if path.is_file():
            h.update(f"{name}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    for path in _weight_files(root):
        raw, header, start = _header(path)
        h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        h.update(raw)
        with path.open("rb") as f:
            for name in sorted(k for k in header if k != "__metadata__"):
                begin, end = header[name].get("data_offsets", (0, 0))
                length = end - begin
                spots = {begin, begin + max(0, length // 2 - SAMPLE_BYTES // 2)}
                spots.add(max(begin, end - SAMPLE_BYTES))
                for spot in sorted(spots):
                    f.seek(start + spot)
                    h.update(f.read(min(SAMPLE_BYTES, end - spot)))
    return "sha256:" + h.hexdigest()[:32]


def weights_id(source: ModelSource) -> str | None:
    """The weights part of a model's identity: a hub snapshot commit or a folder fingerprint.

    Args:
        source: Where the model comes from.

    Returns:
        ``"hub:<commit>"`` or ``"sha256:<hex>"``; ``None`` for a hub id not in the local
        cache yet (load the model, or its configuration, first).
    """
    folder = model_folder(source)
    if folder is None:
        return None
    if source.is_local:
        return folder_fingerprint(folder)
    return f"hub:{folder.name}"  # the snapshot folder is named by its commit


def inspect_checkpoint(source: ModelSource) -> Checkpoint:
    """What kind of checkpoint a model is, from its safetensors headers and ``config.json``.

    Returns ``kind="unknown"`` when there are no files to read (a hub id not cached yet).
    """
    folder = model_folder(source)
    files = _weight_files(folder) if folder is not None else []
    if not files:
        return Checkpoint("unknown", lm_head=False)
    names: set[str] = set()
    shapes: dict[str, list[int]] = {}
    for path in files:
        _, header, _ = _header(path)
        for name, info in header.items():
            if name != "__metadata__":
                names.add(name)
                shapes[name] = list(info.get("shape", []))
    config: dict[str, Any] = {}
    if folder is not None and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = {}
    tied = bool(config.get("tie_word_embeddings", False))
    score = next((n for n in ("score.weight", "classifier.weight") if n in names), None)
    prefixed = any(n.startswith("model.") for n in names)
    lm_head = "lm_head.weight" in names or (tied and prefixed)
    if score is not None:
        rows = shapes[score][0] if shapes[score] else None
        return Checkpoint(
            "sequence-classification",
            lm_head="lm_head.weight" in names,
            score_rows=rows,
            score_head=score,
        )
    if prefixed or "lm_head.weight" in names:
        return Checkpoint("causal-lm", lm_head=lm_head)
    if any(n.startswith(("layers.", "embed_tokens.")) for n in names):
        return Checkpoint("embedding", lm_head=False)
    return Checkpoint("unknown", lm_head=lm_head)


def stored_tensor(source: ModelSource, name: str) -> Any:
    """One tensor as stored in the model's safetensors files, as float32 on the CPU.

    Reads only that tensor (the headers say which file and where), never converting it
    through a lower precision first.

    Args:
        source: The model (a local folder, or a hub id already in the cache).
        name: The tensor's name, e.g. ``"score.weight"``.

    Raises:
        KeyError: If no safetensors file of the model holds ``name``.
    """
    from safetensors import safe_open

    folder = model_folder(source)
    for path in _weight_files(folder) if folder is not None else []:
        _, header, _ = _header(path)
        if name in header:
            with safe_open(str(path), framework="pt") as f:
                return f.get_tensor(name).float()
    raise KeyError(f"model={source.model!r} stores no tensor {name!r}")


#: The sequence-classification format the reranker reads (what the published conversions
#: write): the decoder and a one-row score head equal to the LM head's ``yes`` row minus its
#: ``no`` row, so that ``sigmoid(score . h_last)`` is the original model's P(yes).
SEQ_CLS_FORMAT = (
    "a Qwen3ForSequenceClassification conversion with a one-row score head (num_labels=1, "
    "the 'yes' row minus the 'no' row of the LM head, e.g. "
    "'tomaarsen/Qwen3-Reranker-0.6B-seq-cls')"
)

_NEEDS = {
    "embedding": "a Qwen3-Embedding checkpoint (e.g. 'Qwen/Qwen3-Embedding-0.6B')",
    "reranker": "a Qwen3-Reranker checkpoint (e.g. 'Qwen/Qwen3-Reranker-0.6B')",
}


def check_kind(source: ModelSource, expected: Literal["embedding", "reranker"]) -> Checkpoint:
    """Refuse a checkpoint of the wrong kind for the class that loads it.

    What is detected, from the weight names: a bare decoder (Qwen3-Embedding) given to the
    reranker; a decoder with an LM head (Qwen3-Reranker, or a Qwen3 chat model) given to the
    embedder; a causal LM whose LM head is neither stored nor tied (its yes/no rows would be
    random); a sequence-classification conversion whose score head is not one row (the
    reranker reads :data:`SEQ_CLS_FORMAT`). What is not: a Qwen3 chat model given to the
    reranker (the same layout as Qwen3-Reranker), and folders without safetensors headers
    to read.

    Args:
        source: The model.
        expected: ``"embedding"`` (for :class:`~qwen3_rag.Embedder`) or ``"reranker"``.

    Returns:
        What was found.

    Raises:
        ModelKindError: If the checkpoint is of the other kind, naming both.
    """
    found = inspect_checkpoint(source)
    model = source.model
    if expected == "embedding" and found.kind in ("causal-lm", "sequence-classification"):
        what = (
            "a Qwen3 causal LM (weights with an LM head: a Qwen3-Reranker or a chat model)"
            if found.kind == "causal-lm"
            else "a sequence-classification checkpoint (a converted reranker)"
        )
        raise ModelKindError(
            f"model={model!r} is {what}, not an embedding model: the embedder needs "
            f"{_NEEDS['embedding']}. Were the embedding and reranker models swapped?",
            model=model,
            expected="embedding",
            found="reranker" if found.kind == "causal-lm" else found.kind,
        )
    if expected == "reranker":
        if found.kind == "embedding":
            raise ModelKindError(
                f"model={model!r} is a bare Qwen3 decoder with no LM head (what "
                f"Qwen3-Embedding ships), not a reranker: the reranker needs "
                f"{_NEEDS['reranker']}. Were the embedding and reranker models swapped?",
                model=model,
                expected="reranker",
                found="embedding",
            )
        readable = found.score_rows == 1 and found.score_head == "score.weight"
        if found.kind == "sequence-classification" and not readable:
            rows = "an unreadable" if found.score_rows is None else f"a {found.score_rows}-row"
            if found.score_rows == 1:
                rows = f"a {found.score_head!r}"
            raise ModelKindError(
                f"model={model!r} is a sequence-classification checkpoint with {rows} score "
                f"head, which the reranker cannot interpret: it reads {SEQ_CLS_FORMAT}, or "
                f"{_NEEDS['reranker']} in its original causal-LM format",
                model=model,
                expected="reranker",
                found=f"sequence-classification ({rows} score head)",
            )
        if found.kind == "causal-lm" and not found.lm_head:
            raise ModelKindError(
                f"model={model!r} has no LM head and does not tie it to its embeddings, so "
                f"its yes/no rows would be random: the reranker needs {_NEEDS['reranker']}",
                model=model,
                expected="reranker",
                found="causal-lm without an LM head",
            )
    return found


def adapted_from(source: ModelSource) -> ModelIdentity | None:
    """The identity of the model a folder was adapted from, as ``qwen3-rag adapt`` recorded it.

    Returns ``None`` for a model with no such record (a published model, or one adapted
    before the record existed).
    """
    folder = model_folder(source)
    path = None if folder is None else folder / ADAPT_METADATA
    if path is None or not path.is_file():
        return None
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_identity")
        return None if base is None else ModelIdentity.from_dict(base)
    except (OSError, ValueError, AttributeError):
        logger.warning("%s: unreadable %s", folder, ADAPT_METADATA)
        return None


def check_query_model(documents: ModelIdentity, model: str, query: ModelSource) -> None:
    """Refuse a query model that was not adapted from the weights that embed the documents.

    Args:
        documents: The identity of the document model (or of a collection's vectors).
        model: The document model's name, for the message.
        query: The query model.

    Raises:
        QueryModelError: If the query model records another base, or none.
    """
    if weights_id(query) == documents.weights:
        return  # the same weights on both sides
    base = adapted_from(query)
    if base is None:
        raise QueryModelError(
            f"query_model={query.model!r} has no record of the model it was adapted from "
            f"({ADAPT_METADATA}), so its query vectors cannot be trusted beside the document "
            f"vectors of {model!r}: use a query model made by qwen3-rag adapt --queries-only "
            f"from {model!r}",
            query_model=query.model,
            model=model,
        )
    if base.weights != documents.weights:
        raise QueryModelError(
            f"query_model={query.model!r} was adapted from weights {base.weights}, but the "
            f"documents are embedded by {model!r} ({documents.weights}): its queries would "
            f"not match those vectors. Adapt from {model!r}, or embed the documents with the "
            f"query model's base",
            query_model=query.model,
            model=model,
        )
