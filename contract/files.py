"""sha256 of a file, atomic writes, and JSON that is always valid JSON (no NaN, no Infinity)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["sha256_file", "atomic_write", "write_json", "to_json", "check_writable", "check_utf8_path"]


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMP_MARK = ".edgevit-"   # atomic_write's temporary file: .NAME.edgevit-XXXXXXXX.tmp (contract.manifest knows it)


def atomic_write(path: str | Path, write: Callable[[Path], None], *,
                 before_replace: Callable[[Path], None] | None = None) -> None:
    """write(tmp) to a temp file beside `path`, then rename: a reader never sees a half-written file,
    and a failure leaves the old file (if any) untouched. `before_replace(tmp)` runs between the two (a
    manifest records what is about to stand at `path`: contract.outputs.InPlace.pending)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp's file is private (0600); an output gets the usual mode
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None and e.errno is not None:   # a write into an open file (a full disk) names none
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(o):
    """numpy scalars/arrays and Paths as JSON values (numpy is optional here)."""
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item") and getattr(o, "ndim", None) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _finite(o, where: str = "$"):
    if isinstance(o, float) and not math.isfinite(o):
        raise ValueError(f"refusing to write {o} at {where} into JSON (not a JSON number)")
    if isinstance(o, dict):
        for k, v in o.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(o, (list, tuple)):
        for i, v in enumerate(o):
            _finite(v, f"{where}[{i}]")


def to_json(obj) -> str:
    """Indented JSON; NaN or infinity anywhere is an error naming where, never `NaN` in the file."""
    plain = json.loads(json.dumps(obj, default=_plain))
    _finite(plain)
    return json.dumps(plain, indent=2, allow_nan=False) + "\n"


def read_json_object(path: str | Path) -> dict:
    """A JSON object from a file edgevit keeps (a manifest, a cache): {} when it is missing, unreadable, not JSON,
    not an object, or not a regular file (a FIFO by its name would block the read)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str | Path, obj, *, before_replace: Callable[[Path], None] | None = None) -> None:
    text = to_json(obj)
    atomic_write(path, lambda p: p.write_text(text), before_replace=before_replace)


def check_writable(folder: str | Path, *, option: str = "--out") -> None:
    """Fail before any work, creating nothing, when `folder` (or the nearest existing folder above it)
    cannot be written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _user_error(f"output {folder} exists and is not a folder; choose another {option}")
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir():
        try:   # a real probe: os.access says yes to root even on read-only and virtual file systems
            fd, name = tempfile.mkstemp(prefix=".edgevit-write-test-", dir=probe)
            os.close(fd)
            os.unlink(name)
            return
        except OSError:
            pass
    raise _user_error(f"cannot write to output folder {folder} ({probe} is not a writable folder); "
                      f"choose another {option}")


def check_utf8_path(path: str | Path, *, what: str, fix: str = "rename it") -> Path:
    """`path`, or a UserError when it is not UTF-8 text (a name in another encoding, which Python keeps as
    surrogates): OpenCV crashes on such a path (a segfault, leaving staging folders and locks) and the TFLite
    runtime refuses it, so it is refused before either sees it."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        raise _user_error(f"{what} {shown} is not valid UTF-8 text, which OpenCV and the TFLite runtime cannot "
                          f"open; {fix}") from None
    return Path(path)


def _user_error(message: str):
    from contract.errors import UserError

    return UserError(message)
