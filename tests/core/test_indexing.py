"""The indexer as a library: its stages, its Python API, and a crash at every store write."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qwen3_rag import Embedder
from qwen3_rag.chunking import Chunker, file_hash, read_text, walk
from qwen3_rag.errors import IdentityMismatchError
from qwen3_rag.index_plan import plan_file
from qwen3_rag.indexing import IndexProgress, index_collection, index_paths
from qwen3_rag.loading import ModelSource, load_fast_tokenizer
from qwen3_rag.store import (
    ConfigMismatchError,
    ForeignCollectionError,
    open_client,
    open_collection,
)

SIZES = {"chunk_size": 40, "chunk_overlap": 8, "batch_size": 4}


def paragraphs(topic: str, n: int) -> str:
    return "\n\n".join(
        f"Paragraph {i} about {topic}: a force that attracts bodies, number {i} of {n}, "
        f"with a few more words so it fills about half a chunk."
        for i in range(n)
    )


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def records(db: Path, collection: str = "docs") -> dict[str, dict[str, Any]]:
    got = (
        open_client(db)
        .get_collection(collection)
        .get(include=["documents", "metadatas", "embeddings"])
    )
    return {
        id_: {"document": doc, "metadata": dict(meta), "embedding": np.asarray(emb)}
        for id_, doc, meta, emb in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }


def assert_same_store(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(want)
    for id_, rec in want.items():
        assert got[id_]["document"] == rec["document"], id_
        assert got[id_]["metadata"] == rec["metadata"], id_
        np.testing.assert_allclose(got[id_]["embedding"], rec["embedding"], atol=1e-5)


# -- stages ----------------------------------------------------------------------------------


def test_walk_skips_hidden_and_tool_folders_and_the_store(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.md": "a",
            "sub/b.txt": "b",
            ".hidden.md": "h",
            ".git/HEAD": "ref",
            "__pycache__/x.pyc": b"\0",
            "node_modules/m.js": "m",
            "db/chroma.sqlite3": b"\0",
        },
    )
    got = walk([tmp_path, tmp_path / "a.md"], exclude=[tmp_path / "db"])
    assert got == [tmp_path / "a.md", tmp_path / "sub" / "b.txt"]
    with pytest.raises(FileNotFoundError, match="no such file or folder: nope"):
        walk(["nope"])
    with pytest.raises(TypeError, match="not a single path"):
        walk(str(tmp_path))  # type: ignore[arg-type]


def test_read_text_skips_binary(tmp_path: Path) -> None:
    write(tmp_path, {"t.md": "héllo\n", "nul.bin": b"abc\0def", "latin.txt": "é".encode("latin-1")})
    assert read_text(tmp_path / "t.md") == "héllo\n"
    assert read_text(tmp_path / "nul.bin") is None
    assert read_text(tmp_path / "latin.txt") is None


def test_chunker_sizes_offsets_and_boundaries(real_embedding_dir: Path) -> None:
    tokenizer = load_fast_tokenizer(ModelSource(str(real_embedding_dir)))
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    chunker = Chunker(tokenizer, chunk_size=128, chunk_overlap=16)
    chunks = chunker.chunks("README.md", text, "h")
    assert len(chunks) > 10
    covered = bytearray(len(text))
    for i, c in enumerate(chunks):
        meta = c.metadata
        assert c.id == f"README.md#{i}" and meta["chunk"] == i
        assert meta["n_chunks"] == len(chunks) and meta["file_hash"] == "h"
        start = meta["start_char"]
        assert text[start : start + len(c.text)] == c.text  # located exactly
        assert meta["start_line"] == text.count("\n", 0, start) + 1
        assert len(tokenizer.encode(c.text, add_special_tokens=False).ids) <= 128
        assert c.text == c.text.strip()
        covered[start : start + len(c.text)] = b"\1" * len(c.text)
        end = start + len(c.text)
        if end < len(text):  # never cut inside a word
            assert not (text[end - 1].isalnum() and text[end].isalnum())
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())  # nothing dropped
    assert chunker.chunks("e.md", " \n\n ", "h") == []
    with pytest.raises(ValueError, match=r"chunk_overlap \(16\) must be smaller than chunk_size"):
        Chunker(tokenizer, chunk_size=16, chunk_overlap=16)


def test_chunker_repairs_surrogates_like_the_models(real_embedding_dir: Path) -> None:
    tokenizer = load_fast_tokenizer(ModelSource(str(real_embedding_dir)))
    chunker = Chunker(tokenizer, chunk_size=128, chunk_overlap=16)
    # A library caller's text (files are read as strict UTF-8 and never hold surrogates).
    broken = "First line \ud83d\ude00.\nSecond line \udc00 ends."
    fixed = "First line \U0001f600.\nSecond line \ufffd ends."
    (chunk,) = chunker.chunks("s.md", broken, "h")
    assert chunk.text == fixed and chunk.metadata["start_char"] == 0
    assert chunker.split(broken) == [(0, fixed)]


def test_plan_file(tiny_embedding_dir: Path) -> None:
    tokenizer = load_fast_tokenizer(ModelSource(str(tiny_embedding_dir)))
    chunker = Chunker(tokenizer, 40, 8)
    text = paragraphs("gravity", 5)
    chunks = chunker.chunks("/f.md", text, file_hash(text, chunker.settings))
    assert len(chunks) >= 3

    def stored(cs: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(c.id, c.metadata) for c in cs]

    new = plan_file("/f.md", text, [], chunker)
    assert (new.status, [c.id for c in new.write], new.stale) == (
        "changed",
        [c.id for c in chunks],
        [],
    )
    done = plan_file("/f.md", text, stored(chunks), chunker)
    assert (done.status, done.write, done.stale) == ("unchanged", [], [])
    # An unchanged file is recognised by its hash alone: the tokenizer is never loaded.
    lazy = Chunker(lambda: pytest.fail("the tokenizer was loaded"), 40, 8)
    assert plan_file("/f.md", text, stored(chunks), lazy).status == "unchanged"
    # Interrupted after two chunks of the new text: only the rest is written.
    half = plan_file("/f.md", text, stored(chunks[:2]), chunker)
    assert [c.id for c in half.write] == [c.id for c in chunks[2:]]
    # The text shrank: the leftovers of the old text are stale.
    short = "Gravity."
    shrunk = plan_file("/f.md", short, stored(chunks), chunker)
    assert [c.id for c in shrunk.write] == ["/f.md#0"]
    assert shrunk.stale == [c.id for c in chunks[1:]]
    binary = plan_file("/f.md", None, stored(chunks), chunker)
    assert (binary.status, binary.stale) == ("binary", [c.id for c in chunks])


# -- the Python API --------------------------------------------------------------------------


def test_index_paths_api(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, {"a.md": paragraphs("gravity", 4), "b.txt": paragraphs("capitals", 2)})
    db = tmp_path / "db"
    seen: list[IndexProgress] = []
    stats = index_paths(
        [docs], db=db, model=str(tiny_embedding_dir), on_progress=seen.append, **SIZES
    )
    stored = records(db)
    assert stats.files == 2 and stats.files_changed == 2 and stats.files_unchanged == 0
    assert stats.chunks_embedded == len(stored) == stats.chunks_stored
    assert seen[-1].chunks_done == seen[-1].chunks_total == len(stored)
    assert [p.chunks_done for p in seen] == sorted(p.chunks_done for p in seen)
    # Stored vectors are the embedder's document vectors.
    ids = sorted(stored)
    np.testing.assert_allclose(
        np.stack([stored[i]["embedding"] for i in ids]),
        Embedder(str(tiny_embedding_dir)).embed_documents([stored[i]["document"] for i in ids]),
        atol=1e-5,
    )
    again = index_paths([docs], db=db, **SIZES)  # the collection remembers its model
    assert (again.chunks_embedded, again.files_unchanged) == (0, 2)

    with pytest.raises(ConfigMismatchError, match=r"dimensions None \(asked for 32\)") as exc:
        index_paths([docs], db=db, dimensions=32, **SIZES)
    assert exc.value.differences == {"dimensions": (None, 32)}
    with pytest.raises(TypeError, match="either embedding_function or model"):
        index_paths([docs], db=db, model="x", embedding_function=object(), **SIZES)  # type: ignore[arg-type]
    open_client(db).create_collection("foreign", embedding_function=None)
    with pytest.raises(ForeignCollectionError, match="was not made by qwen3-rag"):
        index_paths([docs], db=db, collection="foreign", **SIZES)


def test_index_collection_on_an_opened_collection(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    # The lower level: any chromadb client, the caller's collection, a custom embed step.
    docs = tmp_path / "docs"
    write(docs, {"a.md": paragraphs("gravity", 3)})
    opened = open_collection(open_client(tmp_path / "db"), "notes", model=str(tiny_embedding_dir))
    assert opened.created
    batches: list[int] = []
    embedder = opened.embedding_function.embedder

    def embed(texts: Iterator[list[str]]) -> Iterator[np.ndarray]:
        for batch in texts:
            batches.append(len(batch))
            yield embedder.embed_documents(batch)

    stats = index_collection([docs], opened.collection, embedder, embed=embed, **SIZES)
    assert sum(batches) == stats.chunks_embedded == opened.collection.count() > 0
    assert max(batches) <= SIZES["batch_size"]


# -- a crash at every store write ------------------------------------------------------------


class Crash(BaseException):
    """Stands for a kill: raised right after the chosen write returned."""


@pytest.fixture
def crash_after(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``crash_after(k)``: the k-th store write (upsert or delete) raises :class:`Crash`."""
    from chromadb.api.models.Collection import Collection

    upsert, delete = Collection.upsert, Collection.delete
    state = {"writes": 0, "crash_at": 0}

    def counted(real: Any) -> Any:
        def wrapper(self: Any, *a: Any, **k: Any) -> Any:
            result = real(self, *a, **k)
            state["writes"] += 1
            if state["writes"] == state["crash_at"]:
                raise Crash
            return result

        return wrapper

    monkeypatch.setattr(Collection, "upsert", counted(upsert))
    monkeypatch.setattr(Collection, "delete", counted(delete))

    def arm(k: int) -> dict[str, int]:
        state.update(writes=0, crash_at=k)
        return state

    return arm


def test_a_crash_at_any_write_loses_and_duplicates_nothing(
    tmp_path: Path, tiny_embedding_dir: Path, crash_after: Any
) -> None:
    model = str(tiny_embedding_dir)
    docs = tmp_path / "docs"
    write(
        docs,
        {
            "edited.md": paragraphs("gravity", 8),
            "shrunk.md": paragraphs("rivers", 6),
            "deleted.md": paragraphs("capitals", 3),
            "same.txt": paragraphs("light", 2),
            "turns_binary.txt": paragraphs("code", 2),
        },
    )
    base = tmp_path / "base"
    crash_after(0)
    index_paths([docs], db=base, model=model, **SIZES)
    before = records(base)

    # The edit: one file changed in its middle, one shrunk, one deleted, one new, one binary.
    text = paragraphs("gravity", 8).split("\n\n")
    text[3] = "An edited paragraph, new words here."
    write(
        docs,
        {
            "edited.md": "\n\n".join(text),
            "shrunk.md": paragraphs("rivers", 2),
            "new.md": paragraphs("oceans", 3),
            "turns_binary.txt": b"\x89PNG\0\0",
        },
    )
    (docs / "deleted.md").unlink()
    fresh = tmp_path / "fresh"
    index_paths([docs], db=fresh, model=model, **SIZES)
    want = records(fresh)
    full = tmp_path / "full"
    shutil.copytree(base, full)
    writes = crash_after(0)
    index_paths([docs], db=full, model=model, **SIZES)
    total = writes["writes"]
    assert total >= 6

    for k in range(1, total):
        db = tmp_path / f"crash{k}"
        shutil.copytree(base, db)
        crash_after(k)
        with pytest.raises(Crash):
            index_paths([docs], db=db, model=model, **SIZES)
        crashed = records(db)
        # Every stored chunk is an old or a new version of itself, and every file still has
        # all its old chunk ids (some maybe already new), or is exactly new, or is gone.
        for id_, rec in crashed.items():
            assert any(
                id_ in version and version[id_]["document"] == rec["document"]
                for version in (before, want)
            ), (k, id_)
        for source in {r["metadata"]["source"] for r in before.values()}:
            old, new, got = (
                {i: r["document"] for i, r in version.items() if r["metadata"]["source"] == source}
                for version in (before, want, crashed)
            )
            assert set(got) >= set(old) or got == new, (k, source, sorted(got))
        crash_after(0)
        index_paths([docs], db=db, model=model, **SIZES)
        assert_same_store(records(db), want)


# -- vectors reused by content ---------------------------------------------------------------


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the embedding model is asked to embed as a document, in order."""
    texts: list[str] = []
    real = Embedder.embed_documents

    def counted(self: Embedder, batch: Any, **kwargs: Any) -> np.ndarray:
        texts.extend(batch)
        return real(self, batch, **kwargs)

    monkeypatch.setattr(Embedder, "embed_documents", counted)
    return texts


def long_file(n: int, edited: int | None = None) -> str:
    words = ["gravity", "light", "rivers", "oceans", "capitals", "music", "code", "stars"]
    out = []
    for i in range(n):
        if i == edited:
            out.append(f"This paragraph {i} was rewritten: it now talks about something else.")
        else:
            w = words[i % len(words)]
            out.append(f"Paragraph {i} is about {w}; {w} number {i} has its own short sentence.")
    return "\n\n".join(out) + "\n"


def test_editing_one_paragraph_re_embeds_only_its_chunks(
    tmp_path: Path, tiny_embedding_dir: Path, model_calls: list[str]
) -> None:
    model = str(tiny_embedding_dir)
    docs = tmp_path / "docs"
    write(docs, {"long.md": long_file(50), "other.md": paragraphs("light", 2)})
    db = tmp_path / "db"
    first = index_paths([docs], db=db, model=model, **SIZES)
    before = records(db)
    n_long = sum(r["metadata"]["source"].endswith("long.md") for r in before.values())
    assert n_long >= 50
    assert len(model_calls) == first.chunks_embedded == len(before)

    write(docs, {"long.md": long_file(50, edited=25)})
    model_calls.clear()
    stats = index_paths([docs], db=db, model=model, **SIZES)
    after = records(db)
    # Re-embedded: exactly the chunks whose text is not stored yet (counted at the model).
    old_texts = {r["document"] for r in before.values()}
    changed = sorted(r["document"] for r in after.values() if r["document"] not in old_texts)
    assert 1 <= len(changed) <= 3
    assert sorted(model_calls) == changed
    assert stats.chunks_embedded == len(changed)
    assert stats.chunks_reused > 0 and stats.files_unchanged == 1
    cost = len(model_calls) / n_long
    assert cost <= 0.10, f"re-index cost {cost:.1%} of a fresh index of the file"
    # The store equals a fresh index of the edited files.
    fresh = tmp_path / "fresh"
    index_paths([docs], db=fresh, model=model, **SIZES)
    assert_same_store(after, records(fresh))


def test_renamed_file_reuses_every_vector(
    tmp_path: Path, tiny_embedding_dir: Path, model_calls: list[str]
) -> None:
    model = str(tiny_embedding_dir)
    docs = tmp_path / "docs"
    write(docs, {"a.md": paragraphs("gravity", 6)})
    db = tmp_path / "db"
    index_paths([docs], db=db, model=model, **SIZES)
    (docs / "a.md").rename(docs / "b.md")
    model_calls.clear()
    stats = index_paths([docs], db=db, model=model, **SIZES)
    assert model_calls == [] and stats.chunks_embedded == 0
    assert stats.files_deleted == 1 and stats.chunks_reused == stats.chunks_removed > 0
    fresh = tmp_path / "fresh"
    index_paths([docs], db=fresh, model=model, **SIZES)
    assert_same_store(records(db), records(fresh))


def test_vectors_are_not_reused_across_settings_or_for_other_text(
    tmp_path: Path, tiny_embedding_dir: Path, model_calls: list[str]
) -> None:
    model = str(tiny_embedding_dir)
    docs = tmp_path / "docs"
    write(docs, {"a.md": paragraphs("gravity", 4)})
    db = tmp_path / "db"
    index_paths([docs], db=db, model=model, **SIZES)
    n = len(records(db))

    # Another dtype makes other vectors: never mixed into the collection, and never reused
    # when the collection is rebuilt with it.
    write(docs, {"a.md": paragraphs("gravity", 4) + "\n\nOne more line.\n"})
    with pytest.raises(IdentityMismatchError, match="precision float32 -> bfloat16"):
        index_paths([docs], db=db, model=model, dtype="bfloat16", **SIZES)
    model_calls.clear()
    stats = index_paths([docs], db=db, model=model, dtype="bfloat16", rebuild=True, **SIZES)
    assert stats.chunks_reused == 0 and len(model_calls) >= n

    # A stored key whose text was since overwritten by a writer that stores no key
    # (chromadb merges metadata, so the old key stays): its vector is not reused.
    collection = open_client(db).get_collection("docs")
    got = collection.get(limit=1, include=["documents", "metadatas", "embeddings"])
    (victim,), (text,), (meta,) = got["ids"], got["documents"], got["metadatas"]
    assert meta["vector_key"]
    wrong = np.asarray(got["embeddings"][0])[::-1].copy()
    collection.upsert(
        ids=[victim], documents=["other text"], embeddings=[wrong], metadatas=[{"by": "x"}]
    )
    assert collection.get(ids=[victim])["metadatas"][0]["vector_key"] == meta["vector_key"]
    write(docs, {"copy.md": text})
    model_calls.clear()
    index_paths([docs], db=db, model=model, dtype="bfloat16", **SIZES)
    assert text in model_calls
    (stored,) = collection.get(where={"source": str(docs / "copy.md")}, include=["embeddings"])[
        "embeddings"
    ]
    want = Embedder(model, dtype="bfloat16").embed_documents([text])[0]
    np.testing.assert_allclose(stored, want, atol=1e-5)
