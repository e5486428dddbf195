"""End to end: persistent Chroma + Qwen3Embeddings + Qwen3RerankRetriever in an LCEL chain."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker, Qwen3RerankRetriever
from qwen3_rag import Embedder, Reranker
from tests.langchain.conftest import QUERY, TEXTS, make_docs
from tests.models import REPO_ROOT

COLLECTION = "qwen3-docs"
CANDIDATES = 6
TOP_K = 3
COSINE = {"hnsw": {"space": "cosine"}}


def build_chain(store: Chroma, reranker: Qwen3Reranker, seen: list[list[Document]], prompts: list):
    retriever = Qwen3RerankRetriever(
        base_retriever=store.as_retriever(search_kwargs={"k": CANDIDATES}),
        reranker=reranker,
        k=TOP_K,
    )

    def format_docs(docs: list[Document]) -> str:
        seen.append(docs)
        return "\n\n".join(d.page_content for d in docs)

    def spy(value: ChatPromptValue) -> ChatPromptValue:
        prompts.append(value)
        return value

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from this context:\n{context}"), ("human", "{question}")]
    )
    llm = FakeListChatModel(responses=["Beijing."])
    return (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(spy)
        | llm
        | StrOutputParser()
    )


async def test_chroma_rag_chain(tmp_path: Path, emb_path: str, rr_path: str) -> None:
    persist = str(tmp_path / "chroma")
    embeddings = Qwen3Embeddings(model=emb_path, device="cpu")
    reranker = Qwen3Reranker(model=rr_path, device="cpu")
    store = Chroma(
        collection_name=COLLECTION,
        embedding_function=embeddings,
        persist_directory=persist,
        collection_configuration=COSINE,
    )
    store.add_documents(make_docs())
    assert store._collection.configuration_json["hnsw"]["space"] == "cosine"

    # the candidates are the cosine nearest neighbours under the core's vectors
    core_emb = Embedder(emb_path, device="cpu")
    sims = core_emb.embed_documents(TEXTS) @ core_emb.embed_queries([QUERY])[0]
    nearest = sorted(range(len(TEXTS)), key=lambda i: -sims[i])[:CANDIDATES]
    candidates = store.similarity_search(QUERY, k=CANDIDATES)
    assert [d.id for d in candidates] == [f"id{i}" for i in nearest]

    # the prompt receives exactly the reranker's top-k of those candidates, in its order
    ranked = Reranker(rr_path, device="cpu").rank(
        QUERY, [d.page_content for d in candidates], top_n=TOP_K
    )
    expected = [candidates[i] for i, _ in ranked]
    seen: list[list[Document]] = []
    prompts: list[ChatPromptValue] = []
    chain = build_chain(store, reranker, seen, prompts)
    assert chain.invoke(QUERY) == "Beijing."
    assert [d.id for d in seen[0]] == [d.id for d in expected]
    assert [d.metadata["relevance_score"] for d in seen[0]] == [s for _, s in ranked]
    assert [d.metadata["source"] for d in seen[0]] == [d.metadata["source"] for d in expected]
    system, human = prompts[0].to_messages()
    context = "\n\n".join(d.page_content for d in expected)
    assert system.content == f"Answer from this context:\n{context}"
    assert human.content == QUERY

    # async path: same documents
    assert await chain.ainvoke(QUERY) == "Beijing."
    assert [d.id for d in seen[1]] == [d.id for d in expected]
    result = [[d.id, d.metadata["relevance_score"]] for d in seen[0]]

    # reopen the persisted store in a new client (a new process) and get the same results
    script = textwrap.dedent(
        f"""
        import json
        from langchain_chroma import Chroma
        from langchain_qwen3 import Qwen3Embeddings, Qwen3Reranker
        from tests.langchain.test_chroma_chain import build_chain

        store = Chroma(
            collection_name={COLLECTION!r},
            embedding_function=Qwen3Embeddings(model={emb_path!r}, device="cpu"),
            persist_directory={persist!r},
            create_collection_if_not_exists=False,
        )
        seen, prompts = [], []
        chain = build_chain(store, Qwen3Reranker(model={rr_path!r}, device="cpu"), seen, prompts)
        chain.invoke({QUERY!r})
        print(json.dumps({{
            "count": store._collection.count(),
            "space": store._collection.configuration_json["hnsw"]["space"],
            "result": [[d.id, d.metadata["relevance_score"]] for d in seen[0]],
            "system": prompts[0].to_messages()[0].content,
        }}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    reopened = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reopened["count"] == len(TEXTS)
    assert reopened["space"] == "cosine"
    assert reopened["result"] == result
    assert reopened["system"] == system.content
