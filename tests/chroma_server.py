"""A real Chroma server (``chroma run``) on a free loopback port, started and stopped by tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Seconds to wait for the server's first heartbeat.
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_command() -> str:
    """The ``chroma`` CLI of this interpreter's environment (installed by chromadb)."""
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    assert found, "the chroma CLI (from chromadb) is not installed"
    return found


def heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """Run ``chroma run --path PATH`` on 127.0.0.1 and a free port; yield its URL; stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (path.parent / f"chroma-{port}.log").open("w")
    process = subprocess.Popen(
        [chroma_command(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not heartbeat(url):
            assert process.poll() is None, f"chroma run exited: see {log.name}"
            assert time.monotonic() < deadline, f"no Chroma heartbeat after {START_TIMEOUT}s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
