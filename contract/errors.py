"""The user-error type every package raises for a mistake the user can fix, the exit codes of every
command, and the runner that turns errors into one line on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["UserError", "Terminated", "run_command", "EXIT_OK", "EXIT_USAGE", "EXIT_TARGETS_MISSED",
           "EXIT_SOURCE_FAILED", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "DEBUG_ENV"]

EXIT_OK = 0
EXIT_USAGE = 2             # a user mistake: bad option, missing or unreadable file (argparse uses 2 too)
EXIT_TARGETS_MISSED = 3    # the work ran, but a budget (simulate) or a fidelity target (export) was missed
EXIT_SOURCE_FAILED = 4     # simulate: the camera source failed mid-stream; the report is marked partial
EXIT_INTERRUPTED = 130     # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143      # SIGTERM (what `timeout`, CI cancellation and service managers send)
DEBUG_ENV = "EDGEVIT_DEBUG"  # =1: show the traceback instead of the one line


class UserError(ValueError):
    """A problem the user can fix (bad option, model, profile, source or file); the message says how."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` and `except BaseException` cleans up the same way
    (child processes killed, staging folders removed, partial results written where they exist)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_command(fn: Callable[[], int | None], *, prog: str) -> int:
    """Runs fn() -> exit code. A user mistake (ValueError, which UserError is, or OSError) becomes one
    line on stderr and EXIT_USAGE; Ctrl-C becomes EXIT_INTERRUPTED, SIGTERM EXIT_TERMINATED."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(fn() or 0)
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except (ValueError, OSError) as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    text = " ".join(str(e).split())
    return text or type(e).__name__
