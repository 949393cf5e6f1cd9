"""The instruction-count cache (instructions.json in EDGEVIT_CACHE_DIR or ~/.cache/edgevit): inference counts
(device_sim.device) and pre/post-processing counts (device_sim.arm.prepost) by key. The cache is a convenience:
anything in it that is not a count this code wrote (a hand edit, a negative or infinite number, a file of the
wrong shape, a FIFO by its name) is counted again, never trusted and never a traceback. Each entry carries a
checksum of its key and values (`seal`): a count edited by hand, even to a plausible number (1001 made every
latency 0.00 ms and every budget PASS), no longer matches it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from contract.files import read_json_object, write_json

__all__ = ["load_cache", "usable", "seal", "save_cache", "MAX_INSTRUCTIONS", "MIN_INSTRUCTIONS"]

MAX_INSTRUCTIONS = 1e13    # per inference or per frame: ~an hour of a 2 GHz core; above it a count is not one
MIN_INSTRUCTIONS = 1e3     # one inference, or one pre/post-processing in Python: never below a thousand


def load_cache(path: Path) -> dict:
    """The cache as a dict; {} when it is missing, unreadable, not JSON, not an object, or not a regular file
    (a FIFO by its name would block the read)."""
    return read_json_object(path)


def _checksum(key: str, entry: dict) -> str:
    body = json.dumps([key, {k: v for k, v in entry.items() if k != "check"}], sort_keys=True, allow_nan=False)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def seal(key: str, entry: dict) -> dict:
    """`entry` with its checksum, as the cache stores it under `key`."""
    entry = {k: v for k, v in entry.items() if k != "check"}
    return {**entry, "check": _checksum(key, entry)}


def usable(key: str, entry, fields: tuple[str, ...]) -> bool:
    """The entry under `key` is one this code sealed, unchanged since, and holds each field as a count in
    [MIN_INSTRUCTIONS, MAX_INSTRUCTIONS] (NaN and infinities fail the comparison; a huge JSON integer compares
    without turning into a float)."""
    if not (isinstance(entry, dict) and all(
            isinstance(v := entry.get(f), (int, float)) and not isinstance(v, bool)
            and MIN_INSTRUCTIONS <= v <= MAX_INSTRUCTIONS for f in fields)):
        return False
    try:
        return entry.get("check") == _checksum(key, entry)
    except (ValueError, TypeError, RecursionError):   # NaN or an unserializable value elsewhere in the entry
        return False


def _writable(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def save_cache(path: Path, cache: dict, log=print, *, what: str = "count") -> None:
    """Written whole (atomic); a name taken by something that is not a regular file is left alone. `what` names
    the cached value in the notes ("count"; footprint.json: "memory measurement")."""
    path = Path(path)
    if path.is_symlink():   # a link the user made (a cache kept elsewhere): written through, never replaced
        if not path.exists():
            log(f"note: {path} is a broken symbolic link; the {what} is not cached (it will be taken again next time)")
            return
        path = path.resolve()
    if path.exists() and not path.is_file():
        log(f"note: {path} is not a regular file; the {what} is not cached (it will be taken again next time)")
        return
    kept = {k: v for k, v in cache.items() if _writable(v)}   # another entry's NaN must not stop this one's save
    try:
        write_json(path, kept)
    except OSError as e:
        log(f"note: could not cache the {what} in {path} ({e}); it will be taken again next time")
