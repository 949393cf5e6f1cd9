"""sha256 of a file, atomic writes, and JSON that is always valid JSON (no NaN, no Infinity)."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["sha256_file", "atomic_write", "temp_target", "marked_name", "is_marked", "write_json", "to_json",
           "check_writable", "check_utf8_path", "path_problem"]


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMP_MARK = ".edgevit-"   # atomic_write's temporary file: .NAME.edgevit-RRRRRRRRCCCCCCCC.tmp
TEMP_EXTRA = len(".") + len(TEMP_MARK) + 16 + len(".tmp")   # what the temporary name adds to NAME
_TEMP = re.compile(r"\.(?P<name>.+)" + re.escape(TEMP_MARK) + r"[a-z0-9]{8}[0-9a-f]{8}\.tmp")


def _check(prefix: str, rand: str) -> str:
    return hashlib.sha256(f"edgevit\0{prefix}\0{rand}".encode("utf-8", "surrogateescape")).hexdigest()[:8]


def marked_name(prefix: str) -> str:
    """`prefix` + 8 random characters + 8 of a checksum of both: a name only edgevit makes (a user's
    `.run.partial-mine` or `.notes.edgevit-mynotes12.tmp` never passes `is_marked`), for what edgevit leaves beside a
    user's files for a moment (temporary files, staging and backup folders) and may have to remove after a kill."""
    rand = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    return f"{prefix}{rand}{_check(prefix, rand)}"


def is_marked(name: str, prefix: str, suffix: str = "") -> bool:
    """`name` is prefix + marked_name's 16 characters + suffix, the checksum right."""
    core = name[len(prefix):len(name) - len(suffix)]
    return (name.startswith(prefix) and name.endswith(suffix) and len(core) == 16
            and core[:8].isascii() and core[:8].isalnum() and core[:8] == core[:8].lower()
            and _check(prefix, core[:8]) == core[8:])


def temp_target(filename: str) -> str | None:
    """The NAME whose atomic_write left `filename` (.NAME.edgevit-RRRRRRRRCCCCCCCC.tmp, marked_name), or None."""
    m = _TEMP.fullmatch(filename)
    return m["name"] if m and is_marked(filename, f".{m['name']}{TEMP_MARK}", ".tmp") else None


def _make_temp(path: Path) -> tuple[int, str]:
    """A new private file .NAME.edgevit-RRRRRRRRCCCCCCCC.tmp beside `path` (O_EXCL, like mkstemp)."""
    for _ in range(100):
        tmp = path.parent / (marked_name(f".{path.name}{TEMP_MARK}") + ".tmp")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def atomic_write(path: str | Path, write: Callable[[Path], None], *,
                 before_replace: Callable[[Path], None] | None = None) -> None:
    """write(tmp) to a temp file beside `path`, then rename: a reader never sees a half-written file,
    and a failure leaves the old file (if any) untouched. `before_replace(tmp)` runs between the two (a
    manifest records what is about to stand at `path`: contract.outputs.InPlace.pending)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _make_temp(path)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())   # the temporary file is private (0600); an output gets the usual mode
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


def path_problem(path: str | Path, want: str) -> str | None:
    """Why `path` is not a `want` ("file": a regular file, "folder"), as the end of a sentence ("does not exist",
    "is a folder", "is a FIFO", "is a broken symbolic link", ...), or None when it is one."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "is a broken symbolic link"
    if not path.exists():
        return "does not exist"
    if (want == "folder") == path.is_dir() and (want == "folder" or path.is_file()):
        return None
    if path.is_dir():
        return "is a folder"
    if want == "folder" and path.is_file():
        return "is a file, not a folder"
    return "is " + next((what for test, what in (("is_fifo", "a FIFO"), ("is_socket", "a socket"),
                                                ("is_block_device", "a device"), ("is_char_device", "a device"))
                         if getattr(path, test)()), "not a regular file")


def _user_error(message: str):
    from contract.errors import UserError

    return UserError(message)
