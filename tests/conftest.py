"""Shared fixtures: randomized models (so fold tests can fail), tiny data sets, CLI runner."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _ctrl_c_as_in_a_terminal():
    """In-process Ctrl-C tests need Python's own SIGINT handler, which a process started with SIGINT ignored (a
    background job's pytest: `make test &`, a CI runner without a terminal) never installs; each test gets it,
    and the disposition it found is put back."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Instruction counts the simulator caches go to this session's temp folder, not the user's ~/.cache."""
    os.environ.setdefault("EDGEVIT_CACHE_DIR", str(tmp_path_factory.mktemp("edgevit-cache")))


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `python -m edgevit_cli ARGS` (the `edgevit` command) in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("EDGEVIT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgevit_cli", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, env: dict | None = None, **popen_kw) -> subprocess.Popen:
    """Starts `python -m edgevit_cli ARGS` to be interrupted: the child takes Ctrl-C like a terminal's
    (default SIGINT disposition), even when the tests run as a background job, whose children inherit
    SIGINT ignored. stdout and stderr are pipes (text)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("EDGEVIT_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "edgevit_cli", *args], cwd=popen_kw.pop("cwd", ROOT), env=full_env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen_kw)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below `root`, the whole tree (symlinks to folders not followed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def assert_unchanged(before: dict[str, str], root: Path, what: str = "") -> None:
    """Every file of `before` is still below `root`, byte-identical."""
    after = snapshot(root)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{what}: changed or removed {changed}"


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user mistake: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    for frag in fragments:
        assert frag.lower() in lines[0].lower(), f"{frag!r} not in {lines[0]!r}"


@pytest.fixture(scope="session")
def digits64():
    from edgevit.data import load_dataset

    return load_dataset("digits", 64)


def _made_once(tmp_path_factory, name: str, make) -> Path:
    """A session folder made once for the whole test run: under pytest-xdist every worker is its own process,
    and the first to ask makes it (under a file lock in the run's shared temp root) while the others wait for
    it; tests only read it. `make(folder)` fills a fresh folder; a failure is every asker's failure."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent      # shared by the workers of this run
    done, failed = root / f"{name}.done", root / f"{name}.failed"
    with FileLock(str(root / f"{name}.lock")):
        if failed.is_file():
            pytest.fail(f"{name}: {failed.read_text()}")
        if not done.is_file():
            try:
                folder = make(tmp_path_factory.mktemp(name))
            except BaseException as e:
                failed.write_text(str(e)[:4000])
                raise
            done.write_text(str(folder))
        return Path(done.read_text())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real, small training run: edgevit_xxs, 5 epochs on digits at 64x64 (~15 s)."""

    def make(out: Path) -> Path:
        proc = run_cli("train", "--model", "edgevit_xxs", "--epochs", "5", "--out", str(out), "--no-progress",
                       timeout=1800)   # ~15 s alone; much longer on a 2-core machine busy with other work
        assert proc.returncode == 0, proc.stderr
        return out

    return _made_once(tmp_path_factory, "tiny_run", make)


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """`edgevit export` of the tiny run, all formats (~25 s)."""

    def make(folder: Path) -> Path:
        out = folder / "art"
        proc = run_cli("export", str(tiny_run / "best.pt"), "--out", str(out), "--calib-samples", "100",
                       timeout=1800)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return out

    return _made_once(tmp_path_factory, "tiny_export", make)
