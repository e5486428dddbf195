"""Two ``qwen3-rag index`` runs on one ``--db`` at once: the second waits, the store ends whole."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen3_rag.loading import ModelSource, load_fast_tokenizer
from qwen3_rag.store import DbLockedError, lock_db
from tests.cli.conftest import CHUNKING, read_db
from tests.cli.test_cli import TEXT_FILES, by_source, check_consistent, embedded


def wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_second_index_run_waits_for_the_first(
    corpus: Path, tmp_path: Path, cli_env: dict[str, str], tiny_embedding_dir: Path
) -> None:
    ready, release = tmp_path / "ready", tmp_path / "release"
    first_err, second_err = tmp_path / "first.err", tmp_path / "second.err"
    index = ["index", "docs", "--db", "db", *CHUNKING]
    pause = ["--pause-after-upserts", "1", "--ready", str(ready), "--release", str(release)]
    with first_err.open("w") as e1, second_err.open("w") as e2:
        # The first run writes one batch, then holds the store (and its lock) until released.
        first = subprocess.Popen(
            [sys.executable, "-m", "tests.cli.faults", *pause, "--", *index],
            cwd=tmp_path,
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=e1,
            text=True,
        )
        second = None
        try:
            wait_for(lambda: ready.exists() or first.poll() is not None, "the first run")
            assert first.poll() is None, first_err.read_text()
            second = subprocess.Popen(
                [sys.executable, "-m", "qwen3_rag.cli", *index],
                cwd=tmp_path,
                env=cli_env,
                stdout=subprocess.PIPE,
                stderr=e2,
                text=True,
            )
            wait_for(
                lambda: "waiting" in second_err.read_text() or second.poll() is not None,
                "the second run to wait",
            )
            assert second.poll() is None, second_err.read_text()
            (note,) = [line for line in second_err.read_text().splitlines() if "waiting" in line]
            assert note == "another qwen3-rag index run is writing to db: waiting for it to finish"
            release.touch()
            out1, _ = first.communicate(timeout=300)
            out2, _ = second.communicate(timeout=300)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
    assert first.returncode == 0, first_err.read_text()
    assert second.returncode == 0, second_err.read_text()
    records = read_db(tmp_path / "db")
    assert set(by_source(records)) == {str(corpus / f) for f in TEXT_FILES}
    check_consistent(records, load_fast_tokenizer(ModelSource(str(tiny_embedding_dir))))
    # The second run planned after the first had finished: nothing left to do.
    assert embedded(out1) == len(records)
    assert embedded(out2) == 0
    assert "3 unchanged" in out2


def test_lock_refuses_when_asked_not_to_wait(tmp_path: Path) -> None:
    db = tmp_path / "db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from qwen3_rag.store import lock_db\n"
            "with lock_db(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(DbLockedError, match="another qwen3-rag index run is writing to"),
            lock_db(db, wait=False),
        ):
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    with lock_db(db, wait=False):  # no stale lock
        pass
