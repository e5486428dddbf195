"""JSON Lines files written as work progresses, read back after an interruption."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines file (``[]`` when it does not exist).

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
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object")
            records.append(record)
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


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSON Lines file atomically (a temporary file renamed into place)."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    """Write one JSON document atomically, indented."""
    write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
