"""The manifest of an output folder: exactly which files edgevit's commands wrote there, and what they were.

`.edgevit-output.json` at the folder's top holds, for every file a command wrote (path relative to the
folder, '/'-separated), its size, sha256 and the command (`kind`) that wrote it. A file is a command's
own only while it is listed under that command and still has the recorded size and sha256: a file a user
put there, a file a user edited, a symlink, or another command's file never is. contract.outputs decides
from this what a command may replace; nothing here deletes anything.

A manifest also records the path of the folder it was written for. Ownership does not depend on it (a
folder moved or copied keeps its manifest, and a command pointed at it treats it as what it holds); the
recovery of a replaced run's backup uses it to tell a backup from a copy or a rename of one.

Manifests written before the checksums (format 1: `{"kind", "entries": [top-level names]}`) are read
as owning the files under their entries that are not newer than the manifest itself: a user's file put
there later, or a file edited later, is not the command's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from contract.files import atomic_write, read_json_object, sha256_file, temp_target

__all__ = ["MANIFEST", "Ownership", "read_manifest", "write_manifest", "manifest_bytes", "restore_manifest",
           "manifest_fields",
           "file_facts", "tree_files", "ownership"]

MANIFEST = ".edgevit-output.json"
FORMAT = 2
_LEGACY_SLACK_S = 2.0      # format 1: files written up to this long after their manifest still count


def file_facts(path: Path, kind: str) -> dict:
    st = path.stat()
    return {"kind": kind, "size": st.st_size, "sha256": sha256_file(path)}


def _facts_ok(v) -> bool:
    return isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)


def read_manifest(folder: Path) -> dict[str, dict]:
    """{relative path: {"kind", "size", "sha256"[, "was"]}} of `folder`'s manifest; {} when there is none or it
    cannot be read (then nothing in the folder is any command's). Entries of the wrong shape (a hand-edited
    manifest) are left out. "was" (size and sha256) is the file an in-place rewrite is replacing: recorded
    before the rename, so a kill between the two leaves either file the command's."""
    data = manifest_fields(folder)
    files = data.get("files")
    if isinstance(files, dict):
        return {k: v if _facts_ok(v.get("was")) else {f: x for f, x in v.items() if f != "was"}
                for k, v in files.items() if _facts_ok(v) and isinstance(v.get("kind"), str)}
    if isinstance(data.get("entries"), list) and isinstance(data.get("kind"), str):
        return _legacy(folder, data["kind"], [e for e in data["entries"] if isinstance(e, str)], folder / MANIFEST)
    return {}


def _legacy(folder: Path, kind: str, entries: list[str], manifest: Path) -> dict[str, dict]:
    """Format 1 listed top-level names only: its files are those under them not newer than it, and not in a
    folder below with a manifest of its own (a copy of another run put there keeps its old times)."""
    ms = manifest.stat()
    limit, moved_limit = ms.st_mtime + _LEGACY_SLACK_S, max(ms.st_mtime, ms.st_ctime) + _LEGACY_SLACK_S
    nested = {p.parent.relative_to(folder).as_posix() for p in folder.rglob(MANIFEST) if p.parent != folder}
    files = {}
    for rel in tree_files(folder):
        path = folder / rel
        if any(rel.startswith(n + "/") for n in nested):
            continue
        st = path.lstat()
        # ctime too: a file moved in after the manifest keeps its old mtime, but the move stamps its ctime
        if rel.split("/")[0] in entries and not path.is_symlink() and path.is_file() \
                and st.st_mtime <= limit and st.st_ctime <= moved_limit:
            files[rel] = file_facts(path, kind)
    return files


def write_manifest(folder: Path, files: dict[str, dict], *, path: Path | None = None, **marks) -> None:
    """Writes `files` (every command's) as `folder`'s manifest, atomically; none left: no manifest. It records
    the path of the folder it is for: `path` (a staging folder's: where it goes), else its own real path.
    `marks` are extra top-level fields (a backup's)."""
    if not files:
        (folder / MANIFEST).unlink(missing_ok=True)
        return
    where = {"path": str(path or folder.resolve())}
    text = json.dumps({"format": FORMAT, "written": datetime.now(UTC).isoformat(timespec="seconds"),
                       "folder": where, **marks,
                       "files": dict(sorted(files.items()))}, indent=2) + "\n"
    atomic_write(folder / MANIFEST, lambda p: p.write_text(text))


def manifest_fields(folder: Path) -> dict:
    """The manifest's top-level fields ({} when there is none or it cannot be read)."""
    return read_json_object(folder / MANIFEST)   # none, or a FIFO or folder by that name: {}


def manifest_bytes(folder: Path) -> bytes | None:
    """The manifest file as it is (to put back byte for byte when a replacement is undone)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def restore_manifest(folder: Path, data: bytes | None) -> None:
    if data is None:
        (folder / MANIFEST).unlink(missing_ok=True)
    else:
        atomic_write(folder / MANIFEST, lambda p: p.write_bytes(data))


def tree_files(folder: Path) -> list[str]:
    """Every entry below `folder` that is not a folder (files, symlinks, special files; a symlink to a
    folder is not followed), relative and '/'-separated, the manifest excluded."""
    found = []
    for top, dirs, files in os.walk(folder):
        rel_top = Path(top).relative_to(folder)
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        dirs[:] = [d for d in dirs if d not in links]
        found += [(rel_top / name).as_posix() for name in [*files, *links]]
    return sorted(f for f in found if f != MANIFEST)


@dataclass
class Ownership:
    """Who owns what in an output folder, for one command (`kind`)."""
    kind: str
    manifest: dict[str, dict] = field(default_factory=dict)   # every command's entries
    raw: bytes | None = None                                   # the manifest file as it was
    owned: list[str] = field(default_factory=list)            # this command's files, unchanged since
    foreign: list[str] = field(default_factory=list)          # everything else below the folder
    changed: list[str] = field(default_factory=list)          # this command's files that were changed since
    leftovers: list[str] = field(default_factory=list)        # of owned: killed writes' temporary files

    def describe(self, names: list[str], *, limit: int = 4) -> str:
        # a subfolder's own manifest (a bench --json written there) is named after the files it lists
        names = sorted(names, key=lambda n: n.rpartition("/")[2] == MANIFEST)
        shown = [f"{n} (changed since edgevit wrote it)" if n in self.changed else n for n in names[:limit]]
        return ", ".join(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _matches(path: Path, facts: dict) -> bool:
    """The file is the recorded one (or, mid-rewrite, the one it replaces)."""
    size = path.stat().st_size
    candidates = [f for f in (facts, facts.get("was")) if f and f.get("size") == size]
    return bool(candidates) and sha256_file(path) in {f["sha256"] for f in candidates}


def _leftover(rel: str, manifest: dict[str, dict], kind: str) -> bool:
    """A killed atomic_write's temporary file of one of `kind`'s files (or of the manifest): never a user's."""
    folder, _, name = rel.rpartition("/")
    target = temp_target(name)
    if target is None:
        return False
    target = f"{folder}/{target}" if folder else target
    return manifest.get(target, {}).get("kind") == kind or target == MANIFEST


def ownership(folder: Path, kind: str) -> Ownership:
    """Which files below `folder` are `kind`'s own (listed under it, same size and sha256, a regular file)."""
    own = Ownership(kind=kind, manifest=read_manifest(folder), raw=manifest_bytes(folder))
    for rel in tree_files(folder):
        facts = own.manifest.get(rel)
        path = folder / rel
        if facts is None or facts.get("kind") != kind:
            if _leftover(rel, own.manifest, kind) and path.is_file() and not path.is_symlink():
                own.owned.append(rel)
                own.leftovers.append(rel)
            else:
                own.foreign.append(rel)
        elif not path.is_symlink() and path.is_file() and _matches(path, facts):
            own.owned.append(rel)
        else:
            own.foreign.append(rel)
            own.changed.append(rel)
    return own
