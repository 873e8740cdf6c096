"""Run one writer process against several reader processes (real processes, as the probe did).

The processes are forked from the test process, so they start at once with mmr-gym already
imported (fresh interpreters would each spend seconds importing scikit-learn on a 2-core machine).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


# Each reader reads at least this often while the writer writes (the writer goes on until they have).
MIN_READS = 10


def _reader(sync: Path, read: Callable[[], object]) -> None:
    (sync / f"ready-{os.getpid()}").write_text("")
    _wait_for(sync / "start")
    reads = failures = 0
    errors: list[str] = []
    while not (sync / "done").exists():
        if reads == MIN_READS:
            (sync / f"read-enough-{os.getpid()}").write_text("")
        try:
            read()
        except Exception as exc:  # anything a user would meet
            failures += 1
            if len(errors) < 3:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
        reads += 1
        time.sleep(0.0005)  # leave the writer some of the machine's 2 cores
    result = {"reads": reads, "failures": failures, "errors": errors}
    (sync / f"result-{os.getpid()}.json").write_text(json.dumps(result))


def _writer(sync: Path, write: Callable[[int], object], readers: int, rounds: int) -> None:
    deadline = time.monotonic() + 60
    while len(list(sync.glob("ready-*"))) < readers and time.monotonic() < deadline:
        time.sleep(0.005)
    (sync / "start").write_text("")
    try:
        i = 0
        # At least `rounds` writes, and on until every reader has read MIN_READS times while they go on
        # (however the machine's load shares the cores between the processes).
        while (
            i < rounds
            or len(list(sync.glob("read-enough-*"))) < readers
            and time.monotonic() < deadline + 120
        ):
            write(i)
            i += 1
    finally:
        (sync / "done").write_text("")


def run_concurrently(
    sync: Path,
    write: Callable[[int], object],
    read: Callable[[], object],
    *,
    readers: int = 3,
    rounds: int = 100,
) -> list[dict]:
    """One writer process calling ``write(i)`` ``rounds`` times while ``readers`` processes call ``read()``.

    Readers start reading when the writer starts writing and stop when it is done; the writer goes
    on past ``rounds`` until every reader has read :data:`MIN_READS` times. Returns each reader's
    ``{"reads", "failures", "errors"}`` (a failure is any exception ``read()`` raised).
    """
    sync.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_reader, args=(sync, read)) for _ in range(readers)]
    processes.append(context.Process(target=_writer, args=(sync, write, readers, rounds)))
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=300)
            assert process.exitcode == 0, f"a {'writer' if process is processes[-1] else 'reader'} failed"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    return [json.loads(path.read_text()) for path in sorted(sync.glob("result-*.json"))]
