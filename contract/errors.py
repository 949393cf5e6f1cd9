"""The user-error type every package raises for a mistake the user can fix, the exit codes of every
command, and the runner that tells a user's mistake (one line, exit 2) from a bug (its traceback, exit 1)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

__all__ = ["UserError", "Terminated", "run_command", "is_user_error", "one_line", "EXIT_OK", "EXIT_BUG",
           "EXIT_USAGE", "EXIT_TARGETS_MISSED", "EXIT_SOURCE_FAILED", "EXIT_INTERRUPTED", "EXIT_TERMINATED",
           "DEBUG_ENV", "BUG_NOTE"]

EXIT_OK = 0
EXIT_BUG = 1               # an exception edgevit did not expect: a bug, reported with its traceback
EXIT_USAGE = 2             # a user mistake: bad option, missing or unreadable file (argparse uses 2 too)
EXIT_TARGETS_MISSED = 3    # the work ran, but a budget (simulate) or a fidelity target (export) was missed
EXIT_SOURCE_FAILED = 4     # simulate: the camera source failed mid-stream; the report is marked partial
EXIT_INTERRUPTED = 130     # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143      # SIGTERM (what `timeout`, CI cancellation and service managers send)
DEBUG_ENV = "EDGEVIT_DEBUG"  # =1: show the traceback of a user error too
BUG_NOTE = "this is a bug in edgevit; please report it with the traceback above"

# The OS errors that are the user's to fix, each with what to do. A path that is missing, not theirs or of
# the wrong kind counts only when the error names it; a full disk, a quota or a file-size limit always.
# Any other OSError (a broken pipe to our own worker, a bad file descriptor...) is a bug.
_PATH_ERRORS = {
    FileNotFoundError: "check the path",
    PermissionError: "check its permissions or choose another path",
    NotADirectoryError: "a file stands where a folder is expected; choose another path",
    IsADirectoryError: "a folder stands where a file is expected; choose another path",
}
_SPACE_ERRNOS = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space or write somewhere else",
    errno.EFBIG: "the file system or the process's file-size limit (ulimit -f) is too small; write somewhere else",
    errno.EROFS: "the file system is read-only; write somewhere else",
}


class UserError(ValueError):
    """A problem the user can fix (bad option, model, profile, source or file); the message says how."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` and `except BaseException` cleans up the same way
    (child processes killed, staging folders removed, partial results written where they exist)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def is_user_error(e: BaseException) -> bool:
    """A UserError, or one of the few OS errors a user fixes (a named path missing, not theirs, a file for
    a folder or the reverse; a full disk, a quota, a file-size limit, a read-only file system)."""
    if isinstance(e, UserError):
        return True
    if not isinstance(e, OSError):
        return False
    if e.errno in _SPACE_ERRNOS:
        return True
    return isinstance(e, tuple(_PATH_ERRORS)) and e.filename is not None


def one_line(e: BaseException) -> str:
    """A user error's message on one line; an OS error as "what: path; the fix"."""
    if isinstance(e, OSError) and not isinstance(e, UserError):
        fix = _SPACE_ERRNOS.get(e.errno) or next((f for t, f in _PATH_ERRORS.items() if isinstance(e, t)), "")
        what = e.strerror or type(e).__name__
        where = "" if e.filename is None else f": {e.filename}" + (
            "" if e.filename2 is None else f" -> {e.filename2}")
        return f"{what}{where}" + (f"; {fix}" if fix else "")
    text = " ".join(str(e).split())
    return text or type(e).__name__


def run_command(fn: Callable[[], int | None], *, prog: str, exiting: bool = False) -> int:
    """Runs fn() -> exit code. A user's mistake (is_user_error) becomes one line on stderr and EXIT_USAGE;
    any other exception is a bug: its traceback, BUG_NOTE and EXIT_BUG. Ctrl-C becomes EXIT_INTERRUPTED,
    SIGTERM EXIT_TERMINATED. exiting: the process ends with this code, so once fn is over Ctrl-C and SIGTERM
    are ignored (one arriving as the interpreter shuts down killed it by the signal, exit -2, with every
    output already written)."""
    import signal
    import threading
    import traceback

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(fn() or 0)
    except KeyboardInterrupt as e:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):    # the run is over: another Ctrl-C must not kill
                signal.signal(sig, signal.SIG_IGN)          # the exit with a traceback or another code
        terminated = isinstance(e, Terminated)
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as e:
        if not is_user_error(e):
            traceback.print_exc()
            print(f"{prog}: {BUG_NOTE}", file=sys.stderr)
            return EXIT_BUG
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if exiting and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
