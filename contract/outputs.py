"""Output folders that never lose a user's files.

Every command that writes a folder (export, simulate) builds it in a staging folder beside the target
and swaps it in whole with `publish`. The folder then holds a manifest (`.edgevit-output.json`: which
command wrote which entries). Before any work, `check_output_folder` decides whether the target may
be replaced:
- it does not exist, or is empty: yes;
- it holds an earlier output of the same command and nothing else: yes, replaced whole;
- it holds anything the command did not write (a user's file, a checkpoint, another command's
  output, a folder without a manifest): no, unless force=True; with force only the earlier output's
  own entries are replaced and everything else stays.
`folder_lock` keeps two runs from writing into the same folder at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from contract.errors import UserError

__all__ = ["MANIFEST", "check_output_folder", "make_staging", "publish", "folder_lock", "discard", "FolderBusy"]

MANIFEST = ".edgevit-output.json"
_LOCK_SUFFIX = ".lock"


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("entries"), list) else None


def _foreign(folder: Path, kind: str) -> tuple[list[str], dict | None]:
    """(entries the command `kind` did not write, the earlier manifest of that kind or None)."""
    manifest = _manifest(folder)
    earlier = manifest if manifest and manifest.get("kind") == kind else None
    ours = set(earlier["entries"]) if earlier else set()
    names = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    return [n for n in names if n not in ours], earlier


def check_output_folder(out: str | Path, *, kind: str, force: bool = False, protect: tuple[Path, ...] = (),
                        option: str = "--out") -> None:
    """Raises UserError, before any work, when writing `kind` output to `out` could lose a file."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{option} {out} is a file, not a folder; choose another {option}")
    for p in protect:
        if Path(p).resolve().parent == out.resolve() or out.resolve() in Path(p).resolve().parents:
            if not force:
                raise UserError(f"{option} {out} holds {Path(p).name}, the input of this command; choose another "
                                f"{option} (or --force to write beside it, replacing only an earlier {kind} output)")
    foreign, _ = _foreign(out, kind)
    if foreign and not force:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise UserError(f"{option} {out} holds files this {kind} did not write ({shown}); choose another {option}, "
                        f"or add --force to replace only an earlier {kind} output there and keep everything else")


def make_staging(out: Path) -> Path:
    """An empty staging folder beside `out` (same file system, so publish is a rename)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise UserError(f"cannot write to output folder {out} ({e.strerror}); choose another --out") from None


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, *, kind: str, force: bool = False) -> None:
    """Swap the finished staging folder in as `out`: whole when `out` holds only an earlier output of
    this kind; entry by entry, keeping every other file, when force allowed foreign files there."""
    entries = sorted(p.name for p in staging.iterdir())
    (staging / MANIFEST).write_text(json.dumps({"kind": kind, "entries": entries,
                                                "written": datetime.now(UTC).isoformat(timespec="seconds")},
                                               indent=2) + "\n")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        return
    check_output_folder(out, kind=kind, force=force)   # it may have changed while we worked
    foreign, earlier = _foreign(out, kind)
    if not foreign:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
        return
    _swap_entries(staging, out, old_entries=earlier["entries"] if earlier else [], new_entries=entries)


def _swap_entries(staging: Path, out: Path, *, old_entries: list[str], new_entries: list[str]) -> None:
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    moved_old, moved_new = [], []
    try:
        for name in [*old_entries, MANIFEST, *new_entries]:
            if (out / name).exists() and name not in moved_old:
                os.replace(out / name, backup / name)
                moved_old.append(name)
        for name in [*new_entries, MANIFEST]:
            os.replace(staging / name, out / name)
            moved_new.append(name)
    except BaseException:
        for name in moved_new:
            os.replace(out / name, staging / name)
        for name in moved_old:
            os.replace(backup / name, out / name)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


class FolderBusy(UserError):
    """Another process holds the folder's lock (a caller that can do other work first may come back)."""


@contextlib.contextmanager
def folder_lock(folder: Path, *, what: str):
    """Exclusive lock on `folder` (a `.NAME.lock` file beside it, removed afterwards); a second run into
    the same folder fails at once with a UserError instead of interleaving its files."""
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.with_name(f".{folder.name}{_LOCK_SUFFIX}")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderBusy(f"another {what} is writing {folder} right now; wait for it or choose another --out") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)
