"""Long benchmark jobs (trainings) run a few at a time, one thread each, each with its own log."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.run import ROOT, log

__all__ = ["run_parallel"]


def run_parallel(jobs: list[tuple[str, list[str]]] | Callable[[], list[tuple[str, list[str]]]], logs: Path,
                 parallel: int) -> None:
    """Runs the commands `parallel` at a time (one thread each, output appended to logs/NAME.log); a failure
    stops the others and the bench, naming its log. `jobs` is a list, or a function returning the jobs that
    can start now in priority order (asked again whenever a slot is free: a job may become available when
    another finishes); a job already started is never started twice."""
    logs.mkdir(parents=True, exist_ok=True)
    available = jobs if callable(jobs) else (lambda: list(jobs))
    started, running = set(), []

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        _loop(available, logs, parallel, started, running)
    finally:   # Ctrl-C, SIGTERM or a failure: no training is left running on its own (each resumes next time)
        signal.signal(signal.SIGTERM, previous)
        for _, proc, _ in running:
            proc.terminate()
        for _, proc, _ in running:
            proc.wait()


def _loop(available, logs: Path, parallel: int, started: set, running: list) -> None:
    while True:
        todo = [job for job in available() if job[0] not in started]
        while todo and len(running) < parallel:
            name, cmd = todo.pop(0)
            started.add(name)
            with open(logs / f"{name}.log", "a") as out:
                running.append((name, subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                                       env={**os.environ, "OMP_NUM_THREADS": "1"}), time.time()))
        if not running:
            return
        time.sleep(2)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode != 0:
                raise SystemExit(f"bench: {name} failed; see {logs / f'{name}.log'}")
            log(f"  {name} done in {(time.time() - t0) / 60:.1f} min")
