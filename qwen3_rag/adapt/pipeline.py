"""All the adaptation stages, resumable, in one folder: what ``qwen3-rag adapt`` runs.

Stages, in order (each reads the previous ones' files from the output folder):

``synthesize``
    Chunk the corpus like ``qwen3-rag index`` (``passages.jsonl``), then write one synthetic
    query per passage with the LLM (``synthetic.jsonl``, appended as it goes).
``filter``
    Score every pair with the base embedder (and the reranker, if given) and mark what the
    filters keep (``pairs.jsonl``: every pair with its scores).
``mine``
    Split the kept pairs by passage into train / dev / test, mine hard negatives for the
    train and dev queries from the passages outside dev and test, and write the BEIR folder
    ``data/`` and ``data/triplets.jsonl``.
``train``
    LoRA training with the report's InfoNCE loss, a checkpoint per epoch in ``train/``
    (and, with ``train_reranker``, supervised reranker training in ``train_reranker/``).
``merge``
    Slerp-merge the epoch checkpoints into ``model/`` (and ``reranker/``), a normal Qwen3
    folder, verified before it is written.
``evaluate``
    nDCG@10 and Recall@10 of the base and the adapted model on the held-out test split, with
    a paired significance test (``evaluation.json``).

``adapt.json`` records the settings and what each stage reported. Run :func:`adapt` again
after an interruption and it skips the finished stages and resumes the unfinished one
(synthesis and training continue where they stopped). ``stage=`` runs one stage again:
``synthesize`` continues and retries the passages that failed, ``train`` starts over, the
others recompute; the stages after it are redone by the next full run.

Example:
    >>> from qwen3_rag.adapt import adapt
    >>> summary = adapt(
    ...     ["docs/"],
    ...     llm=my_llm,  # any str -> str callable
    ...     out="adapted",
    ...     base_model="Qwen/Qwen3-Embedding-0.6B",
    ... )  # doctest: +SKIP
    >>> print(summary.table())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag._files import read_jsonl, save_array, write_json, write_jsonl
from qwen3_rag.adapt import data as data_mod
from qwen3_rag.adapt.corpus import Passage, chunk_corpus, read_passages, write_passages
from qwen3_rag.adapt.filtering import filter_pairs
from qwen3_rag.adapt.llm import LLM
from qwen3_rag.adapt.merge import METADATA_FILE, merge_checkpoints
from qwen3_rag.adapt.mine import MiningReport, mine_negatives
from qwen3_rag.adapt.summary import STAGES, AdaptSummary
from qwen3_rag.adapt.synthesize import synthesize
from qwen3_rag.adapt.train import (
    TrainConfig,
    checkpoints,
    train_embedder,
    train_reranker,
)
from qwen3_rag.embedder import Embedder
from qwen3_rag.instructions import InstructionLike, resolve_instruction
from qwen3_rag.loading import ModelSource, load_config, load_fast_tokenizer
from qwen3_rag.options import (
    DEFAULT_EMBEDDING_MODEL,
    DeviceLike,
    DTypeLike,
    check_positive_int,
)
from qwen3_rag.reranker import Reranker

__all__ = ["STAGES", "AdaptConfig", "AdaptSummary", "adapt"]

logger = logging.getLogger(__name__)

MANIFEST = "adapt.json"
#: Everything :func:`adapt` writes in its folder (``overwrite`` removes only these).
OUTPUTS = (
    MANIFEST,
    "passages.jsonl",
    "synthetic.jsonl",
    "pairs.jsonl",
    "data",
    "train",
    "train_reranker",
    "model",
    "reranker",
    "cache",
    "runs",
    "evaluation.json",
)
#: Settings that may change between a run and its resumption (they do not change results).
RUNTIME = ("workers", "show_progress", "device", "dtype")
#: Probe texts per side for the merge verification.
PROBES = 8


@dataclass(frozen=True, kw_only=True)
class AdaptConfig:
    """Every setting of an adaptation run.

    Attributes:
        base_model: Hub id or folder of the Qwen3-Embedding model to adapt.
        reranker_model: Hub id or folder of a Qwen3-Reranker: enables the filter's band, the
            mining check and (with ``train_reranker``) its own training; ``None``: none.
        instruction: The query instruction trained and evaluated with (``None``: the
            default ``web_search``). Use the same one with the adapted model.
        chunk_size: Tokens per passage (as ``qwen3-rag index --chunk-size``).
        chunk_overlap: Tokens shared by neighbouring passages.
        languages: Query languages drawn per passage.
        query_lengths: Query lengths in words, ``(shortest, longest)``.
        retries: Further LLM attempts per step after a bad reply.
        workers: LLM calls in flight (raise for a remote LLM).
        threshold: Keep pairs whose base-model cosine similarity reaches this (0.7 for the
            real models, the report's value); ``None``: no embedding filter.
        rerank_band: ``(low, high)``: keep pairs whose reranker P(yes) lies within
            (needs ``reranker_model``); ``None``: no reranker filter.
        test_fraction: Share of the passages held out for the before/after evaluation.
        dev_fraction: Share held out for the dev loss.
        mine_margin: Skip negative candidates scoring above ``positive - mine_margin``.
        rerank_max: With a reranker, skip negative candidates it scores at or above this.
        train: The training settings (``train.negatives`` negatives are mined per query).
        train_reranker: Also fine-tune the reranker (needs ``reranker_model``).
        queries_only: Train the query side only, against the base model's fixed passage
            vectors: the adapted model is a query model for ``base_model``
            (``Embedder(base_model, query_model=...)``), so nothing indexed by the base needs
            re-embedding, and training runs the model on the queries alone.
        merge: ``"all"``: slerp-merge every epoch checkpoint; ``"last"``: only the last.
        seed: Seeds the synthesis draws, the split and the mining fill.
        device: Where models run (default CUDA, else MPS, else CPU).
        dtype: Default float32 on CPU, bfloat16 on CUDA.
        show_progress: Progress bars (``None``: only on a terminal).
    """

    base_model: str = DEFAULT_EMBEDDING_MODEL
    reranker_model: str | None = None
    instruction: InstructionLike = None
    chunk_size: int = 512
    chunk_overlap: int = 64
    languages: tuple[str, ...] = ("English",)
    query_lengths: tuple[int, int] = (4, 20)
    retries: int = 2
    workers: int = 1
    threshold: float | None = 0.7
    rerank_band: tuple[float, float] | None = None
    test_fraction: float = 0.2
    dev_fraction: float = 0.1
    mine_margin: float = 0.05
    rerank_max: float = 0.5
    train: TrainConfig = field(default_factory=TrainConfig)
    train_reranker: bool = False
    queries_only: bool = False
    merge: str = "all"
    seed: int = 0
    device: DeviceLike = None
    dtype: DTypeLike = None
    show_progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("base_model",):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must be a hub id or a folder")
        resolve_instruction(self.instruction)
        check_positive_int(self.chunk_size, "chunk_size", 8)
        check_positive_int(self.chunk_overlap, "chunk_overlap", 0)
        check_positive_int(self.workers, "workers")
        if self.merge not in ("all", "last"):
            raise ValueError(f"merge must be 'all' or 'last', got {self.merge!r}")
        if self.train_reranker and not self.reranker_model:
            raise ValueError("train_reranker needs reranker_model")
        if self.rerank_band is not None and not self.reranker_model:
            raise ValueError("rerank_band needs reranker_model")
        if not isinstance(self.train, TrainConfig):
            raise TypeError("train must be a TrainConfig")
        object.__setattr__(self, "languages", tuple(self.languages))
        object.__setattr__(self, "query_lengths", tuple(self.query_lengths))
        if self.rerank_band is not None:
            object.__setattr__(self, "rerank_band", tuple(self.rerank_band))

    def to_dict(self) -> dict[str, Any]:
        """As plain data (for ``adapt.json``)."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "train":
                value = value.to_dict()
            elif f.name == "instruction":
                preset = resolve_instruction(value)
                value = preset.instruction if preset is not None else ""
            elif isinstance(value, tuple):
                value = list(value)
            elif value is not None and not isinstance(value, (str, int, float, bool)):
                value = str(value)
            d[f.name] = value
        return d


class _Run:
    def __init__(
        self,
        corpus: Sequence[str | os.PathLike[str]],
        llm: LLM | None,
        out: Path,
        config: AdaptConfig,
    ) -> None:
        self.corpus = [os.fspath(p) for p in corpus]
        self.llm = llm
        self.out = out
        self.config = config
        self.manifest: dict[str, Any] = {}
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None

    # files and models

    def path(self, name: str) -> Path:
        return self.out / name

    def save(self) -> None:
        write_json(self.path(MANIFEST), self.manifest)

    def done(self, stage: str) -> bool:
        return bool(self.manifest["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, report: dict[str, Any]) -> None:
        self.manifest["stages"][stage] = {"done": True, "report": report}
        self.save()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            c = self.config
            self._embedder = Embedder(
                c.base_model,
                instruction=c.instruction,
                device=c.device,
                dtype=c.dtype,
                show_progress=bool(c.show_progress),
            )
        return self._embedder

    @property
    def reranker(self) -> Reranker | None:
        c = self.config
        if c.reranker_model and self._reranker is None:
            self._reranker = Reranker(
                c.reranker_model, instruction=c.instruction, device=c.device, dtype=c.dtype
            )
        return self._reranker

    def passages(self) -> list[Passage]:
        return read_passages(self.path("passages.jsonl"))

    def passage_vectors(self, passages: list[Passage]) -> dict[str, np.ndarray]:
        """The base embedder's passage vectors, cached in ``cache/`` (filter and mine share)."""
        emb = self.embedder
        texts = emb.document_inputs([p.text for p in passages])
        key = hashlib.sha256(
            json.dumps(
                [
                    emb.identity().key,
                    emb.dimensions,
                    emb.max_length,
                    [p.id for p in passages],
                    texts,
                ]
            ).encode()
        ).hexdigest()[:16]
        cached = self.path("cache") / f"passages-{key}.npy"
        if cached.exists():
            vectors = np.load(cached)
        else:
            vectors = emb.embed_documents([p.text for p in passages])
            save_array(cached, vectors)  # an interrupted write leaves no half file behind
        return {p.id: vectors[i] for i, p in enumerate(passages)}

    # stages

    def synthesize(self) -> dict[str, Any]:
        c = self.config
        if self.llm is None:
            raise ValueError(
                "an LLM is needed to synthesize queries: pass llm= (--llm on the command line)"
            )
        if not self.path("passages.jsonl").exists():
            tokenizer = load_fast_tokenizer(self.embedder.source)
            passages = chunk_corpus(
                self.corpus,
                tokenizer,
                chunk_size=c.chunk_size,
                chunk_overlap=c.chunk_overlap,
                exclude=self.out,
            )
            if not passages:
                raise ValueError(f"no text found in {', '.join(self.corpus)}")
            write_passages(self.path("passages.jsonl"), passages)
            logger.info("%d passages from %s", len(passages), ", ".join(self.corpus))
        report = synthesize(
            self.passages(),
            self.llm,
            self.path("synthetic.jsonl"),
            seed=c.seed,
            lengths=c.query_lengths,
            languages=c.languages,
            retries=c.retries,
            workers=c.workers,
            show_progress=c.show_progress,
        )
        if report.queries == 0:
            raise ValueError(
                f"the LLM wrote no usable query for any of {report.passages} passages "
                f"(failed attempts: {dict(report.failures)}); check the LLM (--llm)"
            )
        return report.to_dict()

    def filter(self) -> dict[str, Any]:
        c = self.config
        passages = self.passages()
        texts = {p.id: p.text for p in passages}
        pairs = [
            p for p in read_jsonl(self.path("synthetic.jsonl")) if p.get("passage_id") in texts
        ]
        for p in pairs:
            p["query_id"] = data_mod.query_id(p["passage_id"], p["query"])
        report = filter_pairs(
            pairs,
            texts,
            self.embedder,
            reranker=self.reranker if c.rerank_band is not None else None,
            threshold=c.threshold,
            band=c.rerank_band,
            passage_vectors=self.passage_vectors(passages),
        )
        write_jsonl(self.path("pairs.jsonl"), pairs)
        return report.to_dict()

    def mine(self) -> dict[str, Any]:
        c = self.config
        passages = self.passages()
        texts = {p.id: p.text for p in passages}
        kept = [p for p in read_jsonl(self.path("pairs.jsonl")) if p.get("kept")]
        # split on ids relative to the corpus folder: the same split wherever the corpus lives
        relative = _relative_ids(passages)
        by_key = data_mod.split_by_passage(
            [relative[p["passage_id"]] for p in kept],
            test=c.test_fraction,
            dev=c.dev_fraction,
            seed=c.seed,
        )
        split = {p["passage_id"]: by_key[relative[p["passage_id"]]] for p in kept}
        pool = [p.id for p in passages if split.get(p.id, "train") == "train"]
        vectors = self.passage_vectors(passages)
        learn = [p for p in kept if split[p["passage_id"]] != "test"]
        q = self.embedder.embed_queries([p["query"] for p in learn])
        positive = np.stack([vectors[p["passage_id"]] for p in learn])
        if c.train.negatives == 0:  # in-batch negatives only
            mined: list[list[tuple[str, float, float | None]]] = [[] for _ in learn]
            report = MiningReport(queries=len(learn), k=0, margin=c.mine_margin)
        else:
            mined, report = mine_negatives(
                q,
                [p["passage_id"] for p in learn],
                (q * positive).sum(axis=1),
                pool,
                np.stack([vectors[i] for i in pool]),
                k=c.train.negatives,
                margin=c.mine_margin,
                reranker=self.reranker,
                queries=[p["query"] for p in learn],
                texts=texts,
                rerank_max=c.rerank_max,
                seed=c.seed,
                show_progress=c.show_progress,
            )
        triplets = [
            data_mod.Triplet(
                split=split[p["passage_id"]],
                query_id=p["query_id"],
                query=p["query"],
                positive_id=p["passage_id"],
                positive=texts[p["passage_id"]],
                negative_ids=tuple(n for n, _, _ in negs),
                negatives=tuple(texts[n] for n, _, _ in negs),
                positive_score=float(p["embedding_score"]),
                negative_scores=tuple(s for _, s, _ in negs),
            )
            for p, negs in zip(learn, mined, strict=True)
        ]
        folder = self.path("data")
        qrels = {
            s: {p["query_id"]: p["passage_id"] for p in kept if split[p["passage_id"]] == s}
            for s in data_mod.SPLITS
        }
        data_mod.write_beir(folder, passages, {p["query_id"]: p["query"] for p in kept}, qrels)
        data_mod.write_triplets(folder / "triplets.jsonl", triplets)
        return {
            **report.to_dict(),
            "splits": {s: len(rows) for s, rows in qrels.items()},
            "data": str(folder),
        }

    def train(self, fresh: bool) -> dict[str, Any]:
        c = self.config
        triplets = self.path("data") / "triplets.jsonl"
        train = data_mod.read_triplets(triplets, "train")
        dev = data_mod.read_triplets(triplets, "dev")
        kwargs: dict[str, Any] = {
            "config": c.train,
            "dev": dev,
            "instruction": c.instruction,
            "device": c.device,
            "dtype": c.dtype,
            "show_progress": c.show_progress,
        }
        if fresh:
            shutil.rmtree(self.path("train"), ignore_errors=True)
            shutil.rmtree(self.path("train_reranker"), ignore_errors=True)
        report = train_embedder(
            c.base_model, train, self.path("train"), queries_only=c.queries_only, **kwargs
        ).to_dict()
        if c.train_reranker and c.reranker_model:
            rr = train_reranker(c.reranker_model, train, self.path("train_reranker"), **kwargs)
            report["reranker"] = rr.to_dict()
        return report

    def merge(self) -> dict[str, Any]:
        c = self.config
        found = checkpoints(self.path("train"))
        if not found:
            raise ValueError("no training checkpoint to merge: run the train stage first")
        chosen = found if c.merge == "all" else found[-1:]
        triplets = data_mod.read_triplets(self.path("data") / "triplets.jsonl", "train")
        probes = ([t.query for t in triplets[:PROBES]], [t.positive for t in triplets[:PROBES]])
        metadata = {
            "base_model": c.base_model,
            "side": "queries" if c.queries_only else "both",
            "instruction": c.to_dict()["instruction"],
            "data": str(self.path("data")),
            "settings": c.to_dict(),
            "training": self.manifest["stages"].get("train", {}).get("report"),
        }
        report = merge_checkpoints(
            c.base_model,
            chosen,
            self.path("model"),
            probes=probes,
            instruction=c.instruction,
            metadata=metadata,
            max_length=c.train.max_length,
            overwrite=True,
        ).to_dict()
        rr_found = checkpoints(self.path("train_reranker"))
        if c.train_reranker and c.reranker_model and rr_found:
            report["reranker"] = self._merge_reranker(c.reranker_model, rr_found, metadata)
        return report

    def _merge_reranker(
        self, reranker_model: str, found: list[Path], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.config
        chosen = found if c.merge == "all" else found[-1:]
        dev = data_mod.read_triplets(self.path("data") / "triplets.jsonl", "dev") or (
            data_mod.read_triplets(self.path("data") / "triplets.jsonl", "train")
        )
        pairs = [(t.query, t.positive) for t in dev] + [
            (t.query, t.negatives[0]) for t in dev if t.negatives
        ]
        labels = [1] * len(dev) + [0] * (len(pairs) - len(dev))
        train = data_mod.read_triplets(self.path("data") / "triplets.jsonl", "train")
        probes = [(t.query, t.positive) for t in train[:PROBES]] + [
            (t.query, t.negatives[0]) for t in train[:PROBES] if t.negatives
        ]
        merged = merge_checkpoints(
            reranker_model,
            chosen,
            self.path("reranker"),
            probes=probes,
            kind="reranker",
            instruction=c.instruction,
            metadata={**metadata, "base_model": reranker_model},
            max_length=c.train.max_length,
            overwrite=True,
        ).to_dict()
        before = self.reranker.score_pairs(pairs) if self.reranker else []
        after = Reranker(
            str(self.path("reranker")), instruction=c.instruction, device=c.device, dtype=c.dtype
        ).score_pairs(pairs)
        return {
            **merged,
            **_yes_rates("before", before, labels),
            **_yes_rates("after", after, labels),
            "pairs": len(pairs),
        }

    def evaluate(self) -> dict[str, Any]:
        return _evaluate(self)

    # driving

    def check_models(self) -> None:
        """Fail before any work on a model that is not Qwen3 (reads only its config)."""
        c = self.config
        for what, model in (("base_model", c.base_model), ("reranker_model", c.reranker_model)):
            if model is None:
                continue
            model_type = getattr(load_config(ModelSource(model)), "model_type", None)
            if model_type != "qwen3":
                raise ValueError(
                    f"{what}={model!r} is a {model_type!r} model, not Qwen3: adapt trains "
                    f"Qwen3-Embedding (and Qwen3-Reranker) models"
                )

    def run(self, stage: str | None, overwrite: bool) -> AdaptSummary:
        self.check_models()
        self.prepare(stage, overwrite)
        todo = [stage] if stage else [s for s in STAGES if not self.done(s)]
        if stage:  # the stages after it use its old output: redo them on the next full run
            for later in STAGES[STAGES.index(stage) + 1 :]:
                if later in self.manifest["stages"]:
                    self.manifest["stages"][later]["done"] = False
        for name in todo:
            self.check_inputs(name)
            logger.info("stage %s", name)
            runner: Callable[[], dict[str, Any]] = getattr(self, name)
            report = self.train(fresh=stage == "train") if name == "train" else runner()
            self.finish(name, report)
        return AdaptSummary(
            self.out, {s: v["report"] for s, v in self.manifest["stages"].items() if v.get("done")}
        )

    def check_inputs(self, stage: str) -> None:
        index = STAGES.index(stage)
        for earlier in STAGES[:index]:
            if earlier == "evaluate":
                continue
            if not self.done(earlier) and not (
                earlier == "merge" and stage == "evaluate" and self.path("model").exists()
            ):
                raise ValueError(
                    f"the {stage} stage needs the {earlier} stage's output in {self.out}: "
                    f"run that stage first (or run all stages)"
                )

    def prepare(self, stage: str | None, overwrite: bool) -> None:
        out = self.out
        settings = self.config.to_dict()
        manifest = out / MANIFEST
        if overwrite:
            for name in OUTPUTS:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        if manifest.exists():
            self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
            before = self.manifest.get("settings", {})
            changed = sorted(
                k for k in settings if k not in RUNTIME and before.get(k) != settings[k]
            )
            if stage is None and all(self.done(s) for s in STAGES):
                raise FileExistsError(
                    f"{out} holds a finished adapt run: pass --overwrite to start again, or "
                    f"--stage STAGE to re-run one stage"
                )
            if stage is None and changed:
                raise ValueError(
                    f"{out} holds a run with other settings ({', '.join(changed)} differ): "
                    f"pass the same settings to resume, --stage STAGE to re-run a stage with "
                    f"the new ones, or --overwrite to start again"
                )
            self.manifest["settings"] = settings
        else:
            if out.exists() and any(out.iterdir()) and not overwrite:
                raise FileExistsError(
                    f"{out} exists and is not an adapt run: choose a new or empty output "
                    f"folder, or pass --overwrite to write into it (its other files are kept)"
                )
            out.mkdir(parents=True, exist_ok=True)
            self.manifest = {
                "version": 1,
                "corpus": self.corpus,
                "settings": settings,
                "stages": {},
            }
        self.save()


def _relative_ids(passages: list[Passage]) -> dict[str, str]:
    """Passage id -> the id with its file path relative to the files' common folder.

    The split hashes these, so it is the same wherever the corpus lives (another machine,
    another temporary folder) and whatever the working directory.
    """
    folders = {str(Path(p.source).parent) for p in passages}
    try:
        base = Path(os.path.commonpath(sorted(folders))) if folders else None
    except ValueError:  # relative and absolute sources mixed, or different drives
        base = None
    out = {}
    for p in passages:
        source = Path(p.source)
        if base is None or not p.id.startswith(p.source) or not source.is_relative_to(base):
            out[p.id] = p.id
        else:
            out[p.id] = source.relative_to(base).as_posix() + p.id[len(p.source) :]
    return out


def _yes_rates(when: str, scores: list[float], labels: list[int]) -> dict[str, float]:
    if not scores:
        return {f"yes_rate_{when}": 0.0, f"accuracy_{when}": 0.0}
    yes = [s > 0.5 for s in scores]
    return {
        f"yes_rate_{when}": sum(yes) / len(yes),
        f"accuracy_{when}": sum(int(y) == lab for y, lab in zip(yes, labels, strict=True))
        / len(yes),
    }


#: The metrics of the before/after table.
METRICS = ("nDCG@10", "Recall@10")


def _evaluate(run: _Run) -> dict[str, Any]:
    """Base against adapted on the held-out test split, through :mod:`qwen3_rag.evaluation`."""
    from qwen3_rag import evaluation

    c = run.config
    data = evaluation.load_beir(run.path("data"), split="test")
    base = run.embedder
    # Queries only: the adapted query model against the base's own passage vectors.
    adapted = Embedder(
        c.base_model if c.queries_only else str(run.path("model")),
        query_model=str(run.path("model")) if c.queries_only else None,
        instruction=c.instruction,
        device=c.device,
        dtype=c.dtype,
    )
    report = evaluation.evaluate(
        data,
        [
            evaluation.Configuration(name="base", model=base),
            evaluation.Configuration(name="adapted", model=adapted),
        ],
        embedder=base,
        metrics=METRICS,
        cache=run.path("cache") / "vectors",
        runs_dir=run.path("runs"),
        show_progress=c.show_progress,
    )
    write_json(run.path("evaluation.json"), report.to_dict())
    versus = report.compare("base", "adapted")
    result = {
        "metrics": list(report.metrics),
        "before": report["base"].metrics,
        "after": report["adapted"].metrics,
        "p_values": report["adapted"].p_values,
        "delta": versus["delta"],
        "p_value": versus["p_value"],
        "significant": versus["significant"],
        "alpha": report.alpha,
        "test": report.test,
        "queries": report.queries,
        "documents": report.documents,
    }
    metadata = run.path("model") / METADATA_FILE
    if metadata.exists():
        info = json.loads(metadata.read_text(encoding="utf-8"))
        info["evaluation"] = {k: result[k] for k in ("before", "after", "p_values", "queries")}
        write_json(metadata, info)
    summary = AdaptSummary(run.out, {"evaluate": result})
    if not summary.improved:
        logger.warning("%s", summary.verdict)
    return result


def adapt(
    corpus: Sequence[str | os.PathLike[str]],
    *,
    llm: LLM | None = None,
    out: str | os.PathLike[str],
    config: AdaptConfig | None = None,
    stage: str | None = None,
    overwrite: bool = False,
    **settings: Any,
) -> AdaptSummary:
    """Adapt a Qwen3-Embedding model to a corpus: every stage, or one.

    Args:
        corpus: Files and folders of text (chunked like ``qwen3-rag index``).
        llm: The LLM that writes queries (any ``str -> str`` callable; see
            :mod:`qwen3_rag.adapt.llm`); needed by the synthesize stage only.
        out: The output folder (created). An unfinished run there is resumed.
        config: The settings; or pass them as keywords (``base_model=...``,
            ``train=TrainConfig(epochs=3)`` ...), which override ``config``'s.
        stage: Run only this stage (one of :data:`STAGES`), even if it ran before.
        overwrite: Delete a previous run's outputs in ``out`` first (other files are kept).
        **settings: Fields of :class:`AdaptConfig`.

    Returns:
        The :class:`AdaptSummary` (``.table()``, ``.verdict``, ``.model``).

    Raises:
        FileExistsError: If ``out`` holds a finished run or other files (without
            ``overwrite`` or ``stage``).
        ValueError: On a bad setting, a corpus too small to split, a base model that is not
            Qwen3, an LLM that wrote nothing usable, or a failed merge verification
            (:class:`~qwen3_rag.adapt.merge.MergeError`).
    """
    if isinstance(corpus, (str, os.PathLike)):
        corpus = [corpus]
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    config = dataclasses.replace(config or AdaptConfig(), **settings)
    return _Run(corpus, llm, Path(out).expanduser().resolve(), config).run(stage, overwrite)
