"""End to end: index a folder and ask questions, qwen3-rag against the paths a user would write.

Three sections of ``python -m benchmarks`` (see :func:`run`):

* **Indexing a folder.** A fixed slice of this repository (Markdown and Python files, each cut
  to a fixed length, copied to a temporary folder) goes into a fresh embedded Chroma store
  three ways: ``qwen3-rag index`` (the CLI entry point, :func:`qwen3_rag.cli.main`);
  LlamaIndex (``SimpleDirectoryReader`` + ``SentenceSplitter`` + ``HuggingFaceEmbedding`` +
  ``ChromaVectorStore`` via ``VectorStoreIndex``); LangChain (``DirectoryLoader`` +
  ``RecursiveCharacterTextSplitter.from_huggingface_tokenizer`` + ``HuggingFaceEmbeddings`` +
  ``Chroma``). Same chunk size in tokens (each splitter counts with the model's tokenizer),
  same store type, models loaded beforehand (load time is not counted). The time inside the
  model is every embedding call (``Embedder.embed_documents``; ``SentenceTransformer.encode``
  for both framework paths), timed from outside; the rest of the wall time is reading,
  chunking, hashing and store writes.
* **Asking a question.** The store ``qwen3-rag index`` wrote is searched for the top
  ``candidates`` chunks, which are reranked to ``top_n``: our retriever in each framework
  against LangChain's ``ContextualCompressionRetriever`` + ``CrossEncoderReranker`` over a
  sentence-transformers ``CrossEncoder`` on the same reranker folder, and LlamaIndex's
  retriever + ``SentenceTransformerRerank``. Each path embeds the query with its own
  embedding model. Latency per question (p50, p95); every path answers each question before
  the next (interleaved).
* **Re-indexing after one edit** (:func:`benchmarks.indexing.reindex_cost`): a 50-chunk file
  indexed from scratch, then again after one paragraph in its middle is rewritten; chunks
  embedded and wall time of the second run, as a share of the first.

The framework paths are configured as close to the Qwen3 recipe as they allow: a
sentence-transformers folder laid out as the published Qwen3-Embedding repository ships it
(last-token pooling, normalisation, the query instruction as the ``query`` prompt; the chat
template removed, see DESIGN.md), float32, and a CrossEncoder with a chat template that renders
the reranker's prompt. ``SentenceTransformerRerank`` exposes no dtype (it would run bfloat16,
~80x slower on a CPU without bf16 units), so its CrossEncoder is replaced by the float32 one
the LangChain path builds; likewise both framework paths share one float32
``SentenceTransformer`` (what each builds from the same folder), so the run fits in memory.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.indexing import reindex_cost
from qwen3_rag.options import Precision

logger = logging.getLogger("benchmarks")

REPO = Path(__file__).resolve().parent.parent

#: The slice of this repository that is indexed (each file cut to ``E2ESettings.file_chars``).
SLICE = [
    "README.md",
    "qwen3_rag/batching.py",
    "qwen3_rag/embedder.py",
    "qwen3_rag/instructions.py",
    "qwen3_rag/reranker.py",
    "langchain_qwen3/retrievers.py",
    "llamaindex_qwen3/retrievers.py",
    "benchmarks/models.py",
]

#: Questions a user of this repository might ask (the first ``E2ESettings.queries`` are used).
QUESTIONS = [
    "How do I rerank the documents a Chroma retriever returns?",
    "Why are embedding batches sorted by length?",
    "Which token must every embedded sequence end with?",
    "How is a long document truncated before it is embedded?",
    "What does the query instruction look like for Qwen3-Embedding?",
    "How do I install the LangChain integration?",
    "How are reranker scores computed from the yes and no logits?",
    "Where are the random-weight benchmark models built?",
    "How does the reranker reuse the query prefix across candidates?",
    "What happens when a text is longer than max_length?",
]


@dataclass
class E2ESettings:
    """Sizes of the end-to-end sections (chosen to keep a run within its time budget)."""

    files: int
    file_chars: int
    chunk_size: int
    chunk_overlap: int
    rounds: int
    queries: int
    candidates: int
    top_n: int
    fidelity_queries: int


FULL = E2ESettings(8, 3000, 128, 16, 2, 8, 30, 5, 2)
QUICK = E2ESettings(4, 2000, 128, 16, 1, 3, 30, 5, 1)
TINY = E2ESettings(3, 1200, 64, 8, 1, 2, 10, 3, 1)


def corpus_folder(target: Path, files: int, chars: int) -> Path:
    """Copy the first ``files`` files of :data:`SLICE`, each cut to ``chars`` (at a line end)."""
    for name in SLICE[:files]:
        text = (REPO / name).read_text(encoding="utf-8")
        if len(text) > chars:
            text = text[: text.rfind("\n", 0, chars) + 1] or text[:chars]
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    return target


@contextlib.contextmanager
def clock(owner: Any, method: str) -> Iterator[list[float]]:
    """Time every call of ``owner.method`` (a class attribute), appending seconds to a list."""
    spent: list[float] = []
    real = getattr(owner, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    setattr(owner, method, timed)
    try:
        yield spent
    finally:
        setattr(owner, method, real)


def chroma_client(db: Path) -> Any:
    """An embedded Chroma client with the settings ``qwen3-rag`` opens its stores with."""
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        str(db), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


@dataclass
class Peers:
    """The framework objects both sections use (built once, models loaded)."""

    tokenizer: Any
    li_embed: Any
    lc_embed: Any
    sentence_transformer: Any


def build_peers(st_dir: Path, query_prompt: str) -> Peers:
    """LlamaIndex's ``HuggingFaceEmbedding`` and LangChain's ``HuggingFaceEmbeddings``."""
    from langchain_huggingface import HuggingFaceEmbeddings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers import AutoTokenizer

    fp32 = {"dtype": torch.float32}
    li_embed = HuggingFaceEmbedding(
        model_name=str(st_dir),
        query_instruction=query_prompt,
        text_instruction="",
        normalize=True,
        device="cpu",
        model_kwargs=fp32,
        local_files_only=True,
    )
    lc_embed = HuggingFaceEmbeddings(
        model_name=str(st_dir),
        model_kwargs={"device": "cpu", "model_kwargs": fp32, "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
        query_encode_kwargs={"normalize_embeddings": True, "prompt": query_prompt},
    )
    # one model in memory: the LangChain path uses the one LlamaIndex built (same folder,
    # same settings; the query prompt is passed per call)
    shared = li_embed._model
    lc_embed._client = shared
    gc.collect()
    tokenizer = AutoTokenizer.from_pretrained(st_dir)
    return Peers(tokenizer, li_embed, lc_embed, shared)


# -- indexing ------------------------------------------------------------------------------


def index_ours(
    folder: Path, db: Path, emb_dir: Path, s: E2ESettings, precision: Precision = "exact"
) -> None:
    """``qwen3-rag index FOLDER --precision PRECISION`` into a fresh store."""
    from qwen3_rag import cli

    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]  # the CLI sets up logging for its process
    try:
        status = cli.main(
            [
                "index",
                str(folder),
                "--db",
                str(db),
                "--embed-model",
                str(emb_dir),
                "--device",
                "cpu",
                "--chunk-size",
                str(s.chunk_size),
                "--chunk-overlap",
                str(s.chunk_overlap),
                "--precision",
                precision,
                "--quiet",
            ]
        )
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    if status != 0:
        raise RuntimeError(f"qwen3-rag index exited with {status}")


def index_llamaindex(folder: Path, db: Path, peers: Peers, s: E2ESettings) -> int:
    """The LlamaIndex path; returns the number of chunks stored."""
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    tok = peers.tokenizer
    documents = SimpleDirectoryReader(
        str(folder), recursive=True, required_exts=[".md", ".py"]
    ).load_data()
    splitter = SentenceSplitter(
        chunk_size=s.chunk_size,
        chunk_overlap=s.chunk_overlap,
        tokenizer=lambda text: tok.encode(text, add_special_tokens=False),
    )
    client = chroma_client(db)
    collection = client.get_or_create_collection("docs", embedding_function=None)
    store = ChromaVectorStore(chroma_collection=collection)
    VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=peers.li_embed,
        transformations=[splitter],
    )
    return int(collection.count())


def index_langchain(folder: Path, db: Path, peers: Peers, s: E2ESettings) -> int:
    """The LangChain path; returns the number of chunks stored."""
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    documents = DirectoryLoader(
        str(folder),
        glob=["**/*.md", "**/*.py"],
        loader_cls=TextLoader,
        loader_kwargs={"encoding": "utf-8"},
    ).load()
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        peers.tokenizer, chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap
    )
    chunks = splitter.split_documents(documents)
    Chroma.from_documents(chunks, peers.lc_embed, client=chroma_client(db), collection_name="docs")
    return len(chunks)


def run_indexing(
    work: Path, emb_dir: Path, peers: Peers, s: E2ESettings, precision: Precision = "exact"
) -> tuple[dict[str, Any], Path]:
    """Time the three indexing paths (interleaved, best round); returns data and our store."""
    from sentence_transformers import SentenceTransformer

    from qwen3_rag import Embedder, loaded_models

    folder = corpus_folder(work / "corpus", s.files, s.file_chars)
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file()]
    tokens = sum(len(peers.tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    warm = corpus_folder(work / "warm-up", 1, 200)
    paths: dict[str, Callable[[Path, Path], Any]] = {
        "qwen3-rag index": lambda src, db: index_ours(src, db, emb_dir, s, precision),
        "LlamaIndex": lambda src, db: index_llamaindex(src, db, peers, s),
        "LangChain": lambda src, db: index_langchain(src, db, peers, s),
    }
    for n, (name, fn) in enumerate(paths.items()):  # imports and first calls, untimed
        logger.info("indexing warm-up: %s", name)
        fn(warm, work / f"db-warm-{n}")
    best: dict[str, dict[str, float]] = {}
    ours_db = work
    for r in range(s.rounds):
        for n, (name, fn) in enumerate(paths.items()):
            logger.info("indexing with %s, round %d", name, r + 1)
            db = work / f"db-{n}-{r}"  # a fresh store each time (chromadb caches clients by path)
            if n == 0:
                ours_db = db
            owner, method = (
                (Embedder, "embed_documents")
                if name == "qwen3-rag index"
                else (SentenceTransformer, "encode")
            )
            with clock(owner, method) as spent:
                start = time.perf_counter()
                fn(folder, db)
                wall = time.perf_counter() - start
            chunks = chroma_client(db).get_collection("docs").count()
            if name not in best or wall < best[name]["seconds"]:
                best[name] = {"seconds": wall, "model_seconds": sum(spent), "chunks": chunks}
    if [k.kind for k in loaded_models()].count("embedder") > 1:
        logger.warning("the CLI loaded a second embedding model: its load time was counted")
    return {
        "files": len(texts),
        "tokens": tokens,
        "chunk_size": s.chunk_size,
        "chunk_overlap": s.chunk_overlap,
        "paths": best,
    }, ours_db


def embedding_fidelity(
    emb_dir: Path, peers: Peers, texts: list[str], queries: list[str]
) -> dict[str, dict[str, float]]:
    """Max |peer vector - ours| on the same chunk texts and questions."""
    from qwen3_rag import Embedder

    ours = Embedder(str(emb_dir), device="cpu")
    docs, qs = ours.embed_documents(texts), ours.embed_queries(queries)
    li_docs = np.array(peers.li_embed.get_text_embedding_batch(texts))
    li_qs = np.array([peers.li_embed.get_query_embedding(q) for q in queries])
    lc_docs = np.array(peers.lc_embed.embed_documents(texts))
    lc_qs = np.array([peers.lc_embed.embed_query(q) for q in queries])
    return {
        "LlamaIndex": {
            "documents": float(np.abs(li_docs - docs).max()),
            "queries": float(np.abs(li_qs - qs).max()),
        },
        "LangChain": {
            "documents": float(np.abs(lc_docs - docs).max()),
            "queries": float(np.abs(lc_qs - qs).max()),
        },
    }


# -- asking a question ---------------------------------------------------------------------


@dataclass
class _Answer:
    texts: list[str]
    scores: list[float]


def _question_paths(
    db: Path,
    emb_dir: Path,
    rr_dir: Path,
    ce_dir: Path,
    peers: Peers,
    s: E2ESettings,
    precision: Precision = "exact",
) -> tuple[dict[str, Callable[[str], _Answer]], Any]:
    """The four retrieve-then-rerank paths over our store; also the shared CrossEncoder."""
    from langchain_chroma import Chroma
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from llama_index.core import VectorStoreIndex
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.vector_stores.chroma import ChromaVectorStore

    import langchain_qwen3
    import llamaindex_qwen3

    client = chroma_client(db)
    collection = client.get_collection("docs")
    fp32 = {"dtype": torch.float32}
    ours: dict[str, Any] = {"precision": precision}

    def lc_store(embeddings: Any) -> Any:
        return Chroma(client=client, collection_name="docs", embedding_function=embeddings)

    def li_index(embed_model: Any) -> Any:
        store = ChromaVectorStore(chroma_collection=collection)
        return VectorStoreIndex.from_vector_store(store, embed_model=embed_model)

    ours_lc = langchain_qwen3.Qwen3RerankRetriever(
        base_retriever=lc_store(
            langchain_qwen3.Qwen3Embeddings(model=str(emb_dir), device="cpu", **ours)
        ).as_retriever(search_kwargs={"k": s.candidates}),
        reranker=langchain_qwen3.Qwen3Reranker(
            model=str(rr_dir), device="cpu", top_n=s.top_n, **ours
        ),
        k=s.top_n,
    )
    ours_li = llamaindex_qwen3.Qwen3RerankRetriever(
        li_index(llamaindex_qwen3.Qwen3Embedding(str(emb_dir), device="cpu", **ours)).as_retriever(
            similarity_top_k=s.candidates
        ),
        llamaindex_qwen3.Qwen3Rerank(str(rr_dir), device="cpu", top_n=s.top_n, **ours),
    )
    cross_encoder = HuggingFaceCrossEncoder(
        model_name=str(ce_dir),
        model_kwargs={"device": "cpu", "model_kwargs": fp32, "local_files_only": True},
    )
    lc_peer = ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=cross_encoder, top_n=s.top_n),
        base_retriever=lc_store(peers.lc_embed).as_retriever(search_kwargs={"k": s.candidates}),
    )
    li_rerank = SentenceTransformerRerank(model=str(ce_dir), top_n=s.top_n, device="cpu")
    li_rerank._model = cross_encoder.client  # float32 (it would load bfloat16), one copy
    gc.collect()
    li_peer_retriever = li_index(peers.li_embed).as_retriever(similarity_top_k=s.candidates)

    def lc_scores(docs: list[Any], query: str) -> _Answer:
        texts = [d.page_content for d in docs]
        return _Answer(
            texts, [float(d.metadata.get("relevance_score", float("nan"))) for d in docs]
        )

    def li_answer(nodes: list[Any]) -> _Answer:
        from llama_index.core.schema import MetadataMode

        return _Answer(
            [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes],
            [float(n.score) for n in nodes],
        )

    def lc_peer_answer(query: str) -> _Answer:
        docs = lc_peer.invoke(query)
        texts = [d.page_content for d in docs]
        # CrossEncoderReranker returns no scores: recompute them (outside the timing)
        return _Answer(texts, [])

    paths: dict[str, Callable[[str], _Answer]] = {
        "ours (LangChain)": lambda q: lc_scores(ours_lc.invoke(q), q),
        "ours (LlamaIndex)": lambda q: li_answer(ours_li.retrieve(q)),
        "LangChain CrossEncoderReranker": lc_peer_answer,
        "LlamaIndex SentenceTransformerRerank": lambda q: li_answer(
            li_rerank.postprocess_nodes(li_peer_retriever.retrieve(q), query_str=q)
        ),
    }
    return paths, cross_encoder


def run_questions(
    db: Path,
    emb_dir: Path,
    rr_dir: Path,
    ce_dir: Path,
    peers: Peers,
    s: E2ESettings,
    official: Callable[[str, list[str]], list[float]],
    precision: Precision = "exact",
) -> dict[str, Any]:
    """Latency per question of the four paths (interleaved), and each one's score fidelity."""
    paths, cross_encoder = _question_paths(db, emb_dir, rr_dir, ce_dir, peers, s, precision)
    queries = QUESTIONS[: s.queries]
    for name, fn in paths.items():  # warm-up (first-call allocations), untimed
        logger.info("question warm-up: %s", name)
        fn(queries[-1])
    latency: dict[str, list[float]] = {name: [] for name in paths}
    answers: dict[str, list[tuple[str, _Answer]]] = {name: [] for name in paths}
    for i, query in enumerate(queries):
        logger.info("question %d of %d", i + 1, len(queries))
        for name, fn in paths.items():
            start = time.perf_counter()
            answer = fn(query)
            latency[name].append(time.perf_counter() - start)
            answers[name].append((query, answer))
    for query, answer in answers["LangChain CrossEncoderReranker"]:
        pairs = [(query, t) for t in answer.texts]
        answer.scores = [float(x) for x in cross_encoder.score(pairs)]
    del paths, cross_encoder
    gc.collect()
    fidelity: dict[str, float] = {}
    for name, answered in answers.items():
        gaps = []
        for query, answer in answered[: s.fidelity_queries]:
            reference = official(query, answer.texts)
            gaps += [abs(a - b) for a, b in zip(answer.scores, reference, strict=True)]
        fidelity[name] = max(gaps) if gaps else float("nan")
    return {
        "queries": len(queries),
        "candidates": s.candidates,
        "top_n": s.top_n,
        "fidelity_queries": s.fidelity_queries,
        "latency_s": latency,
        "p50_s": {k: statistics.median(v) for k, v in latency.items()},
        "p95_s": {k: float(np.percentile(v, 95)) for k, v in latency.items()},
        "max_abs_score_diff": fidelity,
    }


def run(
    s: E2ESettings,
    emb_dir: Path,
    st_dir: Path,
    rr_dir: Path,
    ce_dir: Path,
    query_prompt: str,
    official: Callable[[str, list[str]], list[float]],
    precision: Precision = "exact",
    reindex_too: bool = True,
) -> dict[str, Any]:
    """Both sections; returns their data (``{"indexing": ..., "questions": ...}``).

    ``precision`` is the path ours run (``--precision`` of the CLI, ``precision=`` of the
    classes: ``"exact"`` or ``"fast"``); ``reindex_too=False`` skips the re-indexing section.
    """
    from qwen3_rag import Embedder, Reranker

    Embedder(str(emb_dir), device="cpu", precision=precision).load()  # the CLI's shares it
    Reranker(str(rr_dir), device="cpu", precision=precision).load()
    peers = build_peers(st_dir, query_prompt)
    with tempfile.TemporaryDirectory(prefix="qwen3-e2e-") as tmp:
        work = Path(tmp)
        indexing, db = run_indexing(work, emb_dir, peers, s, precision)
        for name, r in indexing["paths"].items():  # in the log as soon as measured
            logger.info(
                "indexed with %s: %.1f s, %.1f%% outside the model, %d chunks",
                name,
                r["seconds"],
                100 * (1 - r["model_seconds"] / r["seconds"]),
                r["chunks"],
            )
        stored = chroma_client(db).get_collection("docs")
        sample = (stored.get(limit=8, include=["documents"])["documents"]) or []
        indexing["fidelity"] = embedding_fidelity(
            emb_dir, peers, list(sample), QUESTIONS[: s.queries]
        )
        questions = run_questions(db, emb_dir, rr_dir, ce_dir, peers, s, official, precision)
        for name, p50 in questions["p50_s"].items():
            logger.info(
                "asked with %s: p50 %.2f s, p95 %.2f s, max score diff %.1e",
                name,
                p50,
                questions["p95_s"][name],
                questions["max_abs_score_diff"][name],
            )
        reindex = reindex_cost(emb_dir, work) if reindex_too else None
        if reindex is not None:
            logger.info(
                "re-indexed a %d-chunk file after one edit: %d embedded again, %.1f of %.1f s",
                reindex["chunks"],
                reindex["embedded"],
                reindex["again_wall"],
                reindex["scratch_wall"],
            )
    del peers
    gc.collect()
    return {"indexing": indexing, "questions": questions, "reindex": reindex}


# -- report --------------------------------------------------------------------------------


def _target(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(d: dict[str, Any]) -> tuple[list[str], list[tuple[str, float, bool]]]:
    """Markdown lines of both sections, and their target rows ``(name, value, met)``."""
    ix, qa = d["indexing"], d["questions"]
    p = ix["paths"]
    ours = p["qwen3-rag index"]
    lines = [
        f"## Indexing a folder ({ix['files']} files of this repository, {ix['tokens']} tokens, "
        f"chunks of {ix['chunk_size']} tokens)",
        "",
        "| path | s | files/s | tok/s | chunks | outside the model | ours ÷ path |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in sorted(p.items(), key=lambda kv: kv[1]["seconds"]):
        outside = 1 - r["model_seconds"] / r["seconds"]
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {ix['files'] / r['seconds']:.2f} | "
            f"{ix['tokens'] / r['seconds']:.1f} | {r['chunks']} | {outside:.1%} | "
            f"{r['seconds'] / ours['seconds']:.2f}x |"
        )
    fid = ix["fidelity"]
    lines += [
        "",
        "tok/s counts the corpus's tokens (the same for every path); each path embeds its own "
        "chunks (LlamaIndex adds each file's path to the text it embeds, its default). "
        "Fidelity, max |vector - ours| on the same texts: "
        + "; ".join(
            f"{name} {v['documents']:.1e} (chunks), {v['queries']:.1e} (questions)"
            for name, v in fid.items()
        )
        + " (LangChain's HuggingFaceEmbeddings replaces newlines with spaces before embedding).",
        "",
        f"## Asking a question (top {qa['candidates']} from Chroma, reranked to "
        f"{qa['top_n']}; {qa['queries']} questions)",
        "",
        "| path | p50 s | p95 s | max score diff vs official | ours ÷ path (p50) |",
        "|---|---:|---:|---:|---:|",
    ]
    p50, p95 = qa["p50_s"], qa["p95_s"]
    best_ours = min(p50["ours (LangChain)"], p50["ours (LlamaIndex)"])
    for name in sorted(p50, key=p50.__getitem__):
        lines.append(
            f"| {name} | {p50[name]:.2f} | {p95[name]:.2f} | "
            f"{qa['max_abs_score_diff'][name]:.1e} | {p50[name] / best_ours:.2f}x |"
        )
    lines += [
        "",
        f"Score differences are measured on the returned top {qa['top_n']} of the first "
        f"{qa['fidelity_queries']} question(s) against the official recipe on the same texts "
        "(LlamaIndex paths score each node's text with its metadata, as LlamaIndex's "
        "rerankers do). Each path embeds the question with its own embedding model.",
        "",
    ]
    ri = d["reindex"]
    chunk_share = ri["embedded"] / ri["chunks"]
    time_share = ri["again_wall"] / ri["scratch_wall"]
    lines += [
        f"## Re-indexing after editing one paragraph of a {ri['chunks']}-chunk file",
        "",
        "| from scratch s | embedded again | reused | again s | chunks share | time share |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {ri['scratch_wall']:.1f} | {ri['embedded']} | {ri['reused']} | "
        f"{ri['again_wall']:.1f} | {chunk_share:.1%} | {time_share:.1%} |",
        "",
    ]
    rows: list[tuple[str, float, bool]] = []
    for peer in ("LlamaIndex", "LangChain"):
        ratio = p[peer]["seconds"] / ours["seconds"]
        rows.append((f"indexing: >= 2x the {peer} path", ratio, ratio >= 2))
    outside = 1 - ours["model_seconds"] / ours["seconds"]
    rows.append(("indexing: time outside the model <= 10 % of ours", outside, outside <= 0.10))
    for ours_name, peer in (
        ("ours (LangChain)", "LangChain CrossEncoderReranker"),
        ("ours (LlamaIndex)", "LlamaIndex SentenceTransformerRerank"),
    ):  # like for like: the same candidates, the same texts
        ratio = p50[peer] / p50[ours_name]
        rows.append((f"question p50: {ours_name} >= 2x {peer}", ratio, ratio >= 2))
        diff = qa["max_abs_score_diff"][ours_name]
        rows.append((f"question: {ours_name} scores within 1e-4 of official", diff, diff <= 1e-4))
    for what, share in (("chunks embedded", chunk_share), ("time", time_share)):
        rows.append((f"re-index after one edit: {what} <= 10 % of scratch", share, share <= 0.1))
    return lines, rows
