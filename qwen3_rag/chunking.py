"""The text of a corpus as model-sized pieces: walk folders, read text files, chunk them.

The indexer (:mod:`qwen3_rag.indexing`) and adaptation (:mod:`qwen3_rag.adapt`) cut a
corpus the same way, here: :func:`walk` finds the text files (hidden files and folders,
``__pycache__``, ``node_modules`` and virtual environments skipped), :func:`read_text` reads
one (``None`` for a binary file), and :class:`Chunker` splits text into chunks of at most
``chunk_size`` of the embedding model's own tokens, each with its exact position in the file.
:func:`file_hash` is what a chunk stores to know its file has not changed.

Needs ``semantic-text-splitter`` (the ``chroma`` or ``adapt`` extra) for :class:`Chunker`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from qwen3_rag.chunking import walk, read_text
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (Path(folder) / "a.md").write_text("# Notes\\n")
    ...     _ = (Path(folder) / ".hidden").write_text("secret")
    ...     [(p.name, read_text(p)) for p in walk([folder])]
    [('a.md', '# Notes\\n')]
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_rag._extras import require
from qwen3_rag.options import check_positive_int

if TYPE_CHECKING:
    from qwen3_rag.loading import ModelSource

__all__ = [
    "CHUNKER_ID",
    "SKIP_DIRS",
    "Chunk",
    "Chunker",
    "check_chunking",
    "chunk_id",
    "file_hash",
    "read_text",
    "resolve_paths",
    "shared_chunker",
    "walk",
]

#: Folders never walked into (besides hidden ones).
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
#: Bytes read to sniff a NUL byte (a binary file).
SNIFF_BYTES = 8192
#: Names the chunking method in every file hash: a new method re-chunks every file.
CHUNKER_ID = "semantic-text-splitter/1"


# -- walk and read ----------------------------------------------------------------------------


def walk(
    paths: Iterable[str | os.PathLike[str]], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """The files to index under ``paths``, absolute and sorted.

    A path that is a file is taken as it is; folders are walked, skipping hidden files and
    folders (``.git``, ``.venv`` ...), :data:`SKIP_DIRS` and the folders in ``exclude``.

    Args:
        paths: Files and folders.
        exclude: Folders not to walk into (e.g. the store folder itself).

    Returns:
        Absolute file paths, sorted, each once.

    Raises:
        FileNotFoundError: If a path does not exist.
    """
    roots = resolve_paths(paths)
    skip = {Path(p).expanduser().resolve() for p in exclude}
    files: set[Path] = set()
    for root in roots:
        if root.is_file():
            files.add(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and d not in SKIP_DIRS and (here / d) not in skip
            )
            files.update(here / f for f in filenames if not f.startswith("."))
    return sorted(files)


def resolve_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Absolute paths of existing files or folders.

    Raises:
        TypeError: If ``paths`` is a single string.
        FileNotFoundError: If a path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("paths must be a list of files or folders, not a single path")
    roots: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {os.fspath(p)}")
        roots.append(path.resolve())
    return roots


def read_text(path: str | os.PathLike[str]) -> str | None:
    """The file's text, or ``None`` for a binary (NUL byte or not UTF-8) file.

    Raises:
        OSError: If the file cannot be read.
    """
    data = Path(path).read_bytes()
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- chunk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file, as stored.

    Attributes:
        id: ``"{source}#{index}"``.
        text: The chunk's text, exactly ``file_text[start_char:start_char + len(text)]``.
        metadata: ``source``, ``chunk`` (index), ``n_chunks``, ``file_hash``, ``start_char``,
            ``start_line`` (1-based).
    """

    id: str
    text: str
    metadata: dict[str, Any]


def chunk_id(source: str, index: int) -> str:
    """The id of chunk ``index`` of ``source``: ``"{source}#{index}"``."""
    return f"{source}#{index}"


class Chunker:
    """Token-sized chunks that end at the largest boundary that fits.

    Built on ``semantic-text-splitter``'s ``TextSplitter`` sized by a Hugging Face
    ``tokenizers.Tokenizer`` (the embedding model's own): each chunk is at most
    ``chunk_size`` tokens and is made of the largest units that fit: paragraphs (blank
    lines), then lines, sentences, words. Neighbouring chunks share at most
    ``chunk_overlap`` tokens of whole units. ``python -m benchmarks.chunking`` compares it
    with the other splitters.

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` (see :func:`qwen3_rag.loading.load_fast_tokenizer`),
            or a function returning one, called once, on the first text to split (so a run
            that finds every file unchanged never loads it).
        chunk_size: Most tokens per chunk.
        chunk_overlap: Most tokens shared by neighbouring chunks (``< chunk_size``).

    Raises:
        ValueError: If the sizes are out of range.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        >>> words.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> chunker = Chunker(words, chunk_size=4, chunk_overlap=0)
        >>> [c.text for c in chunker.chunks("a.md", "One two.\\n\\nThree four five.\\n", "h")]
        ['One two.', 'Three four five.']
        >>> second = chunker.chunks("a.md", "One two.\\n\\nThree four five.\\n", "h")[1]
        >>> second.id, second.metadata["start_char"], second.metadata["start_line"]
        ('a.md#1', 10, 3)
    """

    def __init__(
        self, tokenizer: Any | Callable[[], Any], chunk_size: int = 512, chunk_overlap: int = 64
    ) -> None:
        check_chunking(chunk_size, chunk_overlap)
        splitters = require("semantic_text_splitter", "chroma", "chunking")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._tokenizer = tokenizer
        self._splitter_type = splitters.TextSplitter
        self._splitter: Any = None
        self._lock = threading.Lock()

    def _split_indices(self, text: str) -> list[tuple[int, str]]:
        with self._lock:
            if self._splitter is None:
                tok = self._tokenizer
                if callable(tok) and not hasattr(tok, "encode"):
                    tok = tok()
                self._splitter = self._splitter_type.from_huggingface_tokenizer(
                    tok, self.chunk_size, self.chunk_overlap
                )
        return list(self._splitter.chunk_indices(text))

    def __repr__(self) -> str:
        return f"Chunker(chunk_size={self.chunk_size}, chunk_overlap={self.chunk_overlap})"

    @property
    def settings(self) -> str:
        """What fixes the chunks besides the text (part of every :func:`file_hash`)."""
        return f"{CHUNKER_ID}:{self.chunk_size}:{self.chunk_overlap}"

    def split(self, text: str) -> list[tuple[int, str]]:
        """``(start_char, chunk_text)`` pairs; blank text gives none.

        Text holding surrogate code points is made well-formed first
        (:func:`qwen3_rag.batching.repaired`); offsets then count in the repaired text.
        """
        from qwen3_rag.batching import repaired

        return self._split(repaired([text])[0])

    def _split(self, text: str) -> list[tuple[int, str]]:
        """:meth:`split` of text already well-formed."""
        return [(int(start), piece) for start, piece in self._split_indices(text)]

    def chunks(self, source: str, text: str, file_hash: str) -> list[Chunk]:
        """The chunks of ``text`` (the file ``source`` with hash ``file_hash``), as stored."""
        from qwen3_rag.batching import repaired

        text = repaired([text])[0]  # once: the offsets below count in this text
        pieces = self._split(text)
        out: list[Chunk] = []
        line, seen = 1, 0
        for i, (start, piece) in enumerate(pieces):
            line += text.count("\n", seen, start)
            seen = start
            meta = {
                "source": source,
                "chunk": i,
                "n_chunks": len(pieces),
                "file_hash": file_hash,
                "start_char": start,
                "start_line": line,
            }
            out.append(Chunk(chunk_id(source, i), piece, meta))
        return out


def check_chunking(chunk_size: int, chunk_overlap: int) -> None:
    """Check the chunk sizes.

    Raises:
        ValueError: If ``chunk_size < 1``, ``chunk_overlap < 0`` or the overlap is not
            smaller than the size.
    """
    check_positive_int(chunk_size, "chunk_size")
    check_positive_int(chunk_overlap, "chunk_overlap", minimum=0)
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )


def file_hash(text: str, settings: str) -> str:
    """The hash stored with each chunk of a file: its text and the chunker settings."""
    h = hashlib.sha256(f"{settings}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def shared_chunker(source: ModelSource, chunk_size: int, chunk_overlap: int) -> Chunker:
    """One chunker per model and sizes in a process, built on first use.

    Its tokenizer and splitter take seconds to build; once built it is read-only and safe
    to share between runs and threads.
    """
    from qwen3_rag.loading import load_fast_tokenizer

    return Chunker(lambda: load_fast_tokenizer(source), chunk_size, chunk_overlap)
