"""Files written so that an interruption never leaves half of one: atomic writes, JSON Lines.

Every file the package writes for a user (vector caches, runs, adapt stages, model folders)
goes through here: a temporary name in the same folder, flushed to disk, then renamed into
place, so a reader sees the old file or the new one and never a part. JSON Lines files that
grow as work progresses are appended one flushed line at a time and read back with the one
reader, which drops a last line an interruption cut short.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_jsonl(folder / "a.jsonl", [{"id": 1}, {"id": 2}])
    >>> [r["id"] for r in read_jsonl(folder / "a.jsonl")]
    [1, 2]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "JsonlWriter",
    "iter_jsonl",
    "json_object",
    "read_jsonl",
    "replace_folder",
    "save_array",
    "write_atomic",
    "write_json",
    "write_jsonl",
    "write_text",
]


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(file)``, atomically.

    The bytes go to a temporary file in the same folder (created if missing), flushed and
    synced, then renamed over ``path``; on any error (Ctrl-C included) the temporary file is
    removed and ``path`` is untouched.

    Args:
        path: The file to write.
        write: Called once with the open binary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8) atomically: readers see the old file or the new one."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, value: Any, *, sort_keys: bool = False) -> None:
    """Write one JSON document atomically, indented."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys)
    write_text(path, text + "\n")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSON Lines file atomically."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def save_array(path: Path, array: NDArray[Any]) -> None:
    """Save a NumPy array (``.npy``, no pickle) atomically."""
    write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))


def replace_folder(target: Path, build: Callable[[Path], object]) -> None:
    """Build a folder beside ``target`` through ``build(tmp)``, then swap it into place.

    On an error the half-built folder is removed and ``target`` is left as it was. The swap
    removes the old folder first, so an interruption between the two steps leaves no folder
    rather than a mix of old and new files.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        build(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_object(data: bytes | str, where: str) -> dict[str, Any]:
    """``data`` parsed as a JSON object, or a ``ValueError`` that starts with ``where``.

    Example:
        >>> json_object('{"a": 1}', "x.json")
        {'a': 1}
        >>> json_object("[1]", "x.json")
        Traceback (most recent call last):
        ...
        ValueError: x.json: expected a JSON object
    """
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object")
    return value


def _record(path: Path, number: int, line: bytes | str) -> dict[str, Any]:
    return json_object(line, f"{path}, line {number}")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line of a JSON Lines file a user gave.

    Every line must be a JSON object, the last one included (a file a user hands in is not
    an interrupted log: nothing is repaired).

    Raises:
        ValueError: If a line is not a JSON object (names the file and line).
    """
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, _record(path, number, line)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines log the package appends to (``[]`` when it does not exist).

    A last line cut short by an interruption (no final newline) is dropped and the file
    truncated before it, so appending afterwards keeps every line whole.

    Raises:
        ValueError: If a complete line is not a JSON object (names the file and line).
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = end = 0  # end: the byte after the last whole line kept
    number = 0
    while pos < len(data):
        number += 1
        newline = data.find(b"\n", pos)
        if newline < 0:  # written without its newline: the write was cut short
            break
        line, pos = data[pos:newline], newline + 1
        if line.strip():
            records.append(_record(path, number, line))
        end = pos
    if end < len(data):
        logger.info("%s: dropping an unfinished last line (interrupted write)", path)
        with path.open("r+b") as f:
            f.truncate(end)
    return records


class JsonlWriter:
    """Appends records to a JSON Lines file, one flushed line each.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
        >>> with JsonlWriter(path) as w:
        ...     w.write({"a": 1})
        >>> read_jsonl(path)
        [{'a': 1}]
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the operating system."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Flush to disk and close."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
