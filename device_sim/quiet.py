"""Silence native libraries' stderr chatter (the runtime announcing its delegate, OpenCV's capture
backends reporting a missing camera) around a call whose failure we report ourselves in one line."""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["quiet_stderr"]


@contextlib.contextmanager
def quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
