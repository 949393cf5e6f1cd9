"""Keep converter chatter (TensorFlow, onnx2tf, the torch exporter) out of the terminal and in a log.

Redirects the process-level stdout/stderr file descriptors, so C++ logging is captured too. On
failure the caller can quote the log's last meaningful lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

__all__ = ["captured_output", "last_error_line"]


@contextlib.contextmanager
def captured_output(log_path: Path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def last_error_line(log_path: Path, *, markers=("error", "Error", "failed", "not supported")) -> str:
    """The last log line that looks like an error (for one-line failure messages)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    hits = [ln for ln in lines if any(m in ln for m in markers)]
    return (hits or lines or [""])[-1][:300]
