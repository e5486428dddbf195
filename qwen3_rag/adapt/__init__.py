"""Adapt Qwen3-Embedding to your documents: synthesize, filter, mine, train, merge, evaluate.

The pipeline of the Qwen3 Embedding report, small, for one corpus: an LLM writes a query for
each passage (:mod:`~qwen3_rag.adapt.synthesize`), pairs are filtered for quality
(:mod:`~qwen3_rag.adapt.filtering`), hard negatives are mined with the current model
(:mod:`~qwen3_rag.adapt.mine`), a LoRA adapter is trained with the report's InfoNCE loss on
exactly the inference formatting (:mod:`~qwen3_rag.adapt.train`), the epoch checkpoints are
slerp-merged into a normal, verified Qwen3 model folder (:mod:`~qwen3_rag.adapt.merge`), and
the base and adapted models are compared on held-out passages with
:mod:`qwen3_rag.evaluation`. :func:`adapt` runs it all (``qwen3-rag adapt`` on the command
line); every stage is also usable alone.

The LLM is any callable ``str -> str`` (:mod:`~qwen3_rag.adapt.llm`): this package imports no
LangChain or LlamaIndex. Training needs ``peft``: ``pip install "qwen3-rag[adapt]"``.

Example:
    >>> from qwen3_rag.adapt import AdaptConfig, TrainConfig, adapt
    >>> config = AdaptConfig(base_model="Qwen/Qwen3-Embedding-0.6B", train=TrainConfig(epochs=2))
    >>> summary = adapt(["docs/"], llm=my_llm, out="adapted", config=config)  # doctest: +SKIP
    >>> print(summary.table())  # doctest: +SKIP
"""

from qwen3_rag.adapt.corpus import Passage, chunk_corpus
from qwen3_rag.adapt.data import Triplet, read_triplets, split_by_passage
from qwen3_rag.adapt.filtering import FilterReport, apply_filters, filter_pairs
from qwen3_rag.adapt.llm import LLM, TransformersChatLLM
from qwen3_rag.adapt.losses import info_nce, yes_no_loss
from qwen3_rag.adapt.merge import MergeError, merge_checkpoints, slerp, verify_model_folder
from qwen3_rag.adapt.mine import MiningReport, mine_negatives
from qwen3_rag.adapt.pipeline import STAGES, AdaptConfig, AdaptSummary, adapt
from qwen3_rag.adapt.synthesize import SynthesisReport, parse_reply, synthesize
from qwen3_rag.adapt.train import TrainConfig, TrainReport, train_embedder, train_reranker

__all__ = [
    "LLM",
    "STAGES",
    "AdaptConfig",
    "AdaptSummary",
    "FilterReport",
    "MergeError",
    "MiningReport",
    "Passage",
    "SynthesisReport",
    "TrainConfig",
    "TrainReport",
    "TransformersChatLLM",
    "Triplet",
    "adapt",
    "apply_filters",
    "chunk_corpus",
    "filter_pairs",
    "info_nce",
    "merge_checkpoints",
    "mine_negatives",
    "parse_reply",
    "read_triplets",
    "slerp",
    "split_by_passage",
    "synthesize",
    "train_embedder",
    "train_reranker",
    "verify_model_folder",
    "yes_no_loss",
]
