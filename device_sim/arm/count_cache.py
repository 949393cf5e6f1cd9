"""The instruction-count cache (instructions.json in EDGEVIT_CACHE_DIR or ~/.cache/edgevit): inference counts
(device_sim.device) and pre/post-processing counts (device_sim.arm.prepost) by key. The cache is a convenience:
anything in it that is not a count this code wrote (a hand edit, a negative or infinite number, a file of the
wrong shape, a FIFO by its name) is counted again, never trusted and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from contract.files import read_json_object, write_json

__all__ = ["load_cache", "usable", "save_cache", "MAX_INSTRUCTIONS", "MIN_INSTRUCTIONS"]

MAX_INSTRUCTIONS = 1e13    # per inference or per frame: ~an hour of a 2 GHz core; above it a count is not one
MIN_INSTRUCTIONS = 1e3     # one inference, or one pre/post-processing in Python: never below a thousand


def load_cache(path: Path) -> dict:
    """The cache as a dict; {} when it is missing, unreadable, not JSON, not an object, or not a regular file
    (a FIFO by its name would block the read)."""
    return read_json_object(path)


def usable(entry, fields: tuple[str, ...]) -> bool:
    """An entry holds each field as a count in [MIN_INSTRUCTIONS, MAX_INSTRUCTIONS] (NaN and infinities fail the
    comparison; a huge JSON integer compares without turning into a float)."""
    return isinstance(entry, dict) and all(
        isinstance(v := entry.get(f), (int, float)) and not isinstance(v, bool)
        and MIN_INSTRUCTIONS <= v <= MAX_INSTRUCTIONS for f in fields)


def _writable(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def save_cache(path: Path, cache: dict, log=print) -> None:
    """Written whole (atomic); a name taken by something that is not a regular file is left alone."""
    path = Path(path)
    if path.exists() and not path.is_file():
        log(f"note: {path} is not a regular file; the count is not cached (it will be counted again next time)")
        return
    kept = {k: v for k, v in cache.items() if _writable(v)}   # another entry's NaN must not stop this one's save
    try:
        write_json(path, kept)
    except OSError as e:
        log(f"note: could not cache the count in {path} ({e}); it will be counted again next time")
