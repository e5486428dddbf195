"""Configurations and their results: the report's table, JSON and TREC run files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qwen3_rag._files import write_text
from qwen3_rag.embedder import Embedder
from qwen3_rag.evaluation.metrics import Run, paired_test, parse_metric
from qwen3_rag.instructions import PRESETS, Preset, resolve_instruction

__all__ = ["Configuration", "ConfigurationResult", "Evaluation", "write_run"]


@dataclass(frozen=True, kw_only=True)
class Configuration:
    """One retrieval setting to evaluate.

    Attributes:
        instruction: Query instruction: a preset name (``"web_search"``,
            ``"question_answering"`` ...), instruction text, a
            :class:`~qwen3_rag.instructions.Preset`, or ``""`` for raw queries; ``None`` uses
            the embedder's own (the collection's, for a Chroma collection). Symmetric presets
            instruct documents too (they get their own document vectors).
        dimensions: Matryoshka size (``32 <= dimensions <= hidden size``); ``None`` uses the
            embedder's own (its full size when it has none; the collection's, for Chroma).
        rerank: Rerank the vector search's first ``fetch_k`` results with the reranker and
            keep the best ``k``.
        fetch_k: Candidates handed to the reranker; ``None``: ``k``. Must be >= ``k``.
        rerank_instruction: The reranker's instruction; ``None``: the query instruction, or
            the reranker's own when queries are raw.
        long_documents: How the reranker reads a candidate longer than its ``max_length``:
            ``"truncate"`` (the recipe), ``"max"`` (best of overlapping windows, see
            :class:`~qwen3_rag.Reranker`); ``None``: the reranker's own setting.
        model: Another embedding model for this configuration (a hub id, folder or
            :class:`~qwen3_rag.Embedder`), e.g. to compare a model before and after adaptation;
            ``None`` uses :func:`evaluate`'s ``embedder``.
        name: The row's name in reports; default built from the settings
            (``"question_answering d=256 +rerank@100"``).

    Example:
        >>> from qwen3_rag.evaluation import Configuration
        >>> baseline = Configuration(instruction="web_search")
        >>> smaller = Configuration(instruction="code_search", dimensions=256)
        >>> reranked = Configuration(instruction="code_search", rerank=True, fetch_k=100)
    """

    instruction: str | Preset | None = None
    dimensions: int | None = None
    rerank: bool = False
    fetch_k: int | None = None
    rerank_instruction: str | Preset | None = None
    long_documents: Literal["truncate", "max"] | None = None
    model: str | os.PathLike[str] | Embedder | None = None
    name: str | None = None


def _label(
    plan_model: str | None,
    preset: Preset | None,
    dims: int | None,
    fetch_k: int | None,
    windows: bool = False,
) -> str:
    """A row name built from the resolved settings: ``"code_search d=256 +rerank@100"``."""
    parts = [] if plan_model is None else [Path(plan_model).name]
    if preset is None:
        parts.append("no-instruction")
    elif PRESETS.get(preset.name) == preset:
        parts.append(preset.name)
    else:
        text = preset.instruction
        parts.append(f'"{text}"' if len(text) <= 24 else f'"{text[:23].rstrip()}…"')
    if dims is not None:
        parts.append(f"d={dims}")
    if fetch_k is not None:
        parts.append(f"+rerank@{fetch_k}" + (" windows" if windows else ""))
    return " ".join(parts)


def _resolve(instruction: str | Preset | None, own: Preset | None) -> Preset | None:
    """The preset a configuration applies (``None``: raw text)."""
    if instruction is None:
        return own
    if isinstance(instruction, str) and not instruction.strip():
        return None
    return resolve_instruction(instruction)


@dataclass
class ConfigurationResult:
    """What one configuration scored.

    Attributes:
        name: The row's name.
        configuration: The configuration as given.
        metrics: Metric name -> mean over the queries.
        per_query: Metric name -> query id -> value (for your own analyses and tests).
        p_values: Metric name -> two-sided p-value against the first configuration (empty
            for the first).
        run: Query id -> ``(document id, score)`` pairs, best first.
        settings: What was actually run: model, instruction text, document instruction,
            dimensions, rerank, fetch_k.
    """

    name: str
    configuration: Configuration
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    p_values: dict[str, float]
    run: Run
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The results of :func:`evaluate`: one :class:`ConfigurationResult` per configuration.

    Attributes:
        results: In the order the configurations were given; the first is the baseline of
            the significance tests.
        metrics: The metric names, in column order.
        k: Results per query in every run.
        dataset: The dataset's name; ``split`` its qrels split.
        split: The qrels split, if known.
        queries: Queries evaluated (those with a relevant document).
        documents: Documents in the corpus.
        search: ``"exact"`` or a description of the Chroma collection searched.
        test: The significance test (``"permutation"`` or ``"t-test"``).
        alpha: The significance level of the table's markers.
    """

    results: list[ConfigurationResult]
    metrics: list[str]
    k: int
    dataset: str
    split: str | None
    queries: int
    documents: int
    search: str
    test: str
    alpha: float

    def __getitem__(self, name: str) -> ConfigurationResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no configuration named {name!r}: {[r.name for r in self.results]}")

    def _metric(self, metric: str | None) -> str:
        name = parse_metric(metric).name if metric is not None else self.metrics[0]
        if name not in self.metrics:
            raise ValueError(f"metric {name!r} was not computed; this report has {self.metrics}")
        return name

    def best(self, metric: str | None = None) -> list[str]:
        """Names of the configurations with the highest mean ``metric`` (default: the first).

        Ties give several names.
        """
        name = self._metric(metric)
        top = max(r.metrics[name] for r in self.results)
        return [r.name for r in self.results if r.metrics[name] == top]

    def compare(self, a: str, b: str, metric: str | None = None) -> dict[str, Any]:
        """Configuration ``b`` against ``a`` on one metric, with the paired test.

        Args:
            a: Name of the reference configuration (e.g. the model before adaptation).
            b: Name of the configuration compared with it.
            metric: A computed metric; default the first (``nDCG@10`` by default).

        Returns:
            ``{"metric", "a", "b", "delta", "p_value", "significant"}``: the means, ``b - a``,
            the paired test's p-value and whether it is below ``alpha``.

        Raises:
            KeyError: If ``a`` or ``b`` names no configuration.
            ValueError: If ``metric`` was not computed.

        Example:
            >>> report.compare("base", "adapted")  # doctest: +SKIP
            {'metric': 'nDCG@10', 'a': 0.41, 'b': 0.47, 'delta': 0.06, 'p_value': 0.003, ...}
        """
        name = self._metric(metric)
        ra, rb = self[a], self[b]
        qids = list(ra.per_query[name])
        p = paired_test(
            [ra.per_query[name][q] for q in qids],
            [rb.per_query[name][q] for q in qids],
            method="t-test" if self.test == "t-test" else "permutation",
        )
        delta = rb.metrics[name] - ra.metrics[name]
        return {
            "metric": name,
            "a": ra.metrics[name],
            "b": rb.metrics[name],
            "delta": delta,
            "p_value": p,
            "significant": p < self.alpha,
        }

    def _marks(self, r: ConfigurationResult, metric: str) -> str:
        mark = "*" if r.name in self.best(metric) else ""
        p = r.p_values.get(metric)
        if p is not None and p < self.alpha:
            base = self.results[0].metrics[metric]
            mark += "+" if r.metrics[metric] > base else "-"
        return mark

    def table(self) -> str:
        """The results as a text table: configurations as rows, metrics as columns.

        ``*`` marks the best value of a column; ``+`` / ``-`` a value significantly better /
        worse than the first row's (paired test, p < ``alpha``); the last column gives the
        p-value of the first metric against the first row.
        """
        first = self.metrics[0]
        width = max(len("configuration"), *(len(r.name) for r in self.results))
        cols = [max(len(m), 8) for m in self.metrics]
        head = "  ".join(
            ["configuration".ljust(width)]
            + [m.ljust(c) for m, c in zip(self.metrics, cols, strict=True)]
            + [f"p({first})"]
        )
        lines = [head]
        for i, r in enumerate(self.results):
            cells = [r.name.ljust(width)]
            for m, c in zip(self.metrics, cols, strict=True):
                cells.append(f"{r.metrics[m]:.4f}{self._marks(r, m)}".ljust(c))
            cells.append("-" if i == 0 else _format_p(r.p_values[first]))
            lines.append("  ".join(cells).rstrip())
        what = "exact search" if self.search == "exact" else self.search
        split = f", split {self.split}" if self.split else ""
        test = "paired randomisation test" if self.test == "permutation" else "paired t-test"
        return "\n".join(
            [
                f"{self.dataset}{split}: {self.queries:,} queries, {self.documents:,} "
                f"documents, {what}, {self.k} results per query",
                *lines,
                f"* best in column; +/- better/worse than the first row "
                f"({test}, two-sided, p < {self.alpha:g})",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The same numbers as :meth:`table`, JSON-serialisable (what ``--json`` prints)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "documents": self.documents,
            "search": self.search,
            "k": self.k,
            "metrics": list(self.metrics),
            "significance": {
                "test": self.test,
                "alpha": self.alpha,
                "baseline": self.results[0].name,
            },
            "configurations": [
                {
                    "name": r.name,
                    **r.settings,
                    "metrics": dict(r.metrics),
                    "p_values": dict(r.p_values),
                    "best": [m for m in self.metrics if r.name in self.best(m)],
                    "better": [
                        m
                        for m in self.metrics
                        if r.p_values.get(m, 1.0) < self.alpha
                        and r.metrics[m] > self.results[0].metrics[m]
                    ],
                    "worse": [
                        m
                        for m in self.metrics
                        if r.p_values.get(m, 1.0) < self.alpha
                        and r.metrics[m] < self.results[0].metrics[m]
                    ],
                }
                for r in self.results
            ],
        }


def _format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def write_run(
    path: str | os.PathLike[str], run: Mapping[str, Sequence[tuple[str, float]]], name: str
) -> Path:
    """Write a run in TREC format: ``qid Q0 docid rank score run_name`` per line.

    Scores are written exactly (``repr`` of the float), so ``trec_eval`` on the file orders
    ties the same way and computes the same numbers. The file is written to a temporary name
    and renamed into place.

    Args:
        path: The file to write.
        run: Query id -> ``(document id, score)`` pairs, best first.
        name: The run name (spaces become ``_``).

    Returns:
        The path written.

    Example:
        >>> write_run("runs/web_search.trec", report.results[0].run, "web_search")  # doctest: +SKIP
    """
    target = Path(path)
    tag = re.sub(r"\s+", "_", name.strip()) or "run"
    lines = (
        f"{qid} Q0 {did} {rank} {float(score)!r} {tag}\n"
        for qid, ranked in run.items()
        for rank, (did, score) in enumerate(ranked, start=1)
    )
    write_text(target, "".join(lines))
    return target


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@=+-]+", "_", name).strip("_") or "run"
