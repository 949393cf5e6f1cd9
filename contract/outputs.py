"""Output folders and files that never lose a user's file: the one place that decides what a command may
replace, and that replaces it.

Every command that writes a folder records exactly the files it wrote in the folder's manifest
(contract.manifest: path, size, sha256, command). Replacing a folder removes only files listed there
under the same command and unchanged since; anything else anywhere in the tree (a user's file, a file the
user edited, another command's file, a symlink) is kept, and without force its presence refuses the run
(`check_output_folder`, one line naming it). force means "replace my earlier outputs", never "delete
yours": a file of the user's where the command must write refuses the run even with force.

- `resolve_out`: the path a command works on, symlinks followed, so a symlinked --out writes into its
  target (and stays a symlink) and the lock is keyed by the real folder.
- `make_staging` / `publish` / `discard`: export, simulate and quant-report build their results in a
  staging folder and swap them in only when they are complete; a failure restores what was there.
- `written_in_place`: train writes into its folder as it goes; with force the earlier run is moved aside
  and restored if the new run fails or is interrupted before its first checkpoint.
- `check_output_file` / `publish_file`: single-file outputs (`--json`) refuse a file they did not write
  unless force, and never write over an input of the same command.
- `deferred_signals`: Ctrl-C / SIGTERM wait until a swap is complete, so an interrupt at any moment leaves
  either the old outputs or the new ones, never a mix or nothing.
- `folder_lock`: two runs never write the same folder at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path

from contract.errors import UserError
from contract.files import TEMP_EXTRA, _umask, check_utf8_path, is_marked, marked_name, temp_target
from contract.manifest import (
    MANIFEST,
    Ownership,
    _matches,
    file_facts,
    manifest_fields,
    ownership,
    read_manifest,
    restore_manifest,
    tree_files,
    write_manifest,
)

__all__ = ["MANIFEST", "resolve_out", "check_output_folder", "make_staging", "publish", "discard", "folder_lock",
           "FolderBusy", "written_in_place", "InPlace", "check_output_file", "publish_file", "deferred_signals",
           "HeldSignals",
           "remove_outputs", "record_outputs", "unchanged_outputs",
           "writers_in_turn", "restore_left_backup", "recover_output", "recover_input", "not_a_folder"]

_LOCK_SUFFIX = ".lock"
_BACKUP_MARK = ".old-"    # .NAME.old-XXXX beside a folder: its earlier outputs while they are being replaced
_STAGING_MARK = ".partial-"   # .NAME.partial-XXXX: a new output being built (make_staging)
_KILLED_MARK = ".killed-"     # .NAME.killed-XXXX: what a killed --force run had written, set aside
_MAX_NAME = 255 - len(".") - len(_STAGING_MARK) - 16   # the longest sibling: .NAME.partial-RRRRRRRRCCCCCCCC
_MAX_FILE_NAME = 255 - TEMP_EXTRA   # atomic_write's .NAME.edgevit-RRRRRRRRCCCCCCCC.tmp
_LOCK_MARK = b"edgevit folder lock\n"   # what a lock file edgevit made holds (only such a file is removed)
_NOTED: set[Path] = set()    # superseded backups this process has named already
_HELD: set[Path] = set()     # folders whose lock this process holds (folder_lock)
_STAGING: set[Path] = set()  # staging folders this process is building
_TURNS: dict[Path, int] = {}  # folders whose manifest this process is writing (writers_in_turn), how deep


def resolve_out(out: str | Path, *, option: str = "--out") -> Path:
    """The real path of an output (symlinks followed, `.` and `..` resolved): what is locked and written.
    A path that is not UTF-8 text is refused before anything is created (OpenCV crashes on one)."""
    try:
        real = Path(out).expanduser().resolve()
    except (OSError, RuntimeError) as e:
        raise UserError(f"{option} {out} cannot be resolved ({e}); choose another {option}") from None
    if real == real.parent:
        raise UserError(f"{option} {out} is the file system's root; choose a folder for the results")
    return check_utf8_path(real, what=option, fix=f"rename it or choose another {option}")


def _check_name_room(out: Path) -> None:
    """An output's staging, backup and lock go beside it under longer names: its own name must leave room."""
    if len(os.fsencode(out.name)) > _MAX_NAME:
        raise UserError(f"output folder {out}: its name is {len(os.fsencode(out.name))} bytes long; edgevit keeps "
                        f"its staging, backup and lock beside it under longer names, so at most {_MAX_NAME}: choose "
                        "a shorter output name (--out)")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(out: str | Path, *, kind: str, force: bool = False, protect: tuple[Path, ...] = (),
                        option: str = "--out", expect: tuple[str, ...] = ()) -> Ownership | None:
    """Raises UserError, before any work, when writing `kind` output to `out` could lose a file: without
    force when anything below `out` is not an unchanged earlier `kind` output; with force when a file
    that is not (a protected input, or a user's file at a path in `expect`) would have to be replaced.
    Returns the folder's Ownership (None when it does not exist)."""
    out = resolve_out(out, option=option)
    recover_output(out, what=kind)   # a command killed while it replaced `out`: undone first
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"{option} {out} is a file, not a folder; choose another {option}")
    own = ownership(out, kind)
    for p in protect:
        real = Path(p).expanduser().resolve()
        if _inside(real, out) and not force:
            raise UserError(f"{option} {out} holds {real.name}, the input of this command; choose another "
                            f"{option} (or --force to write beside it, replacing only an earlier {kind} output)")
        if any(out / rel == real for rel in own.owned):
            raise UserError(f"{option} {out}: replacing the earlier {kind} output there would remove "
                            f"{real}, the input of this command; choose another {option}")
    if own.foreign and not force:
        raise UserError(f"{option} {out} holds files this {kind} did not write ({own.describe(own.foreign)}); "
                        f"move them or choose another {option}, or add --force to replace only an earlier "
                        f"{kind} output there and keep them")
    clash = [rel for rel in own.foreign if any(e == rel or e.startswith(rel + "/") for e in expect)]
    if clash:
        raise _clash(out, kind, own, clash, option)
    return own


def _clash(out: Path, kind: str, own: Ownership, names: list[str], option: str) -> UserError:
    for rel in names:
        stands = _obstacle(out, rel, ours=set(own.owned))
        if stands is not None and (stands != out / rel or stands.is_symlink()):
            what = "a symlink" if stands.is_symlink() else "a file"
            return UserError(f"{option} {out}: {stands} is {what} where this {kind} writes {rel}; edgevit never "
                             f"writes through it: move it away or choose another {option}")
    return UserError(f"{option} {out}: this {kind} must write {own.describe(names)}, which it did not write "
                     f"before; --force keeps such files, so move it away or choose another {option}")


def make_staging(out: Path) -> Path:
    """An empty staging folder beside `out` (same file system, so publishing is renames)."""
    out = resolve_out(out)
    _check_name_room(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = _sibling_dir(out, _STAGING_MARK, 0o777 & ~_umask())   # it becomes the output folder
        _STAGING.add(staging)
        return staging
    except OSError as e:
        raise UserError(f"cannot write to output folder {out} ({e.strerror}); choose another --out") from None


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    _STAGING.discard(staging)


def _sibling_dir(out: Path, mark: str, mode: int = 0o700) -> Path:
    """A new folder .NAME<mark>RRRRRRRRCCCCCCCC beside `out` (contract.files.marked_name: edgevit's by its name)."""
    for _ in range(100):
        path = out.parent / marked_name(f".{out.name}{mark}")
        try:
            os.mkdir(path, mode)
            os.chmod(path, mode)   # mkdir's mode passes through the umask
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name", str(out))


def publish(staging: Path, out: Path, *, kind: str, force: bool = False, option: str = "--out") -> None:
    """Swap the finished staging folder in as `out`: the earlier `kind` output's own files go, every
    other file stays, the manifest lists exactly the new files. Refuses (UserError, `out` untouched)
    when a file that is not an earlier `kind` output stands where a new one goes. Ctrl-C waits until the
    swap is done; a failure inside it puts the old files back. `staging` is gone afterwards."""
    try:
        out = resolve_out(out, option=option)
        with deferred_signals():   # from the first checksum: a Ctrl-C while they are taken leaves no staging
            new = {rel: file_facts(staging / rel, kind) for rel in tree_files(staging)}
            if not out.exists() and not out.is_symlink():     # an existing folder (maybe the cwd) stays
                write_manifest(staging, new, path=out)   # recorded where it goes
                os.replace(staging, out)
                return
            with writers_in_turn(out):   # a --json written meanwhile is in the ownership read here, or waits
                own = check_output_folder(out, kind=kind, force=force, option=option)
                blocked = _blocked(out, own, new)
                if blocked:
                    raise _clash(out, kind, own, blocked, option)
                _swap(staging, out, own, new)
    finally:
        discard(staging)


def _obstacle(out: Path, rel: str, *, ours: frozenset[str] | set[str] = frozenset()) -> Path | None:
    """What stands where `rel` goes: a symlink or a file where one of its folders goes (a move would go through
    the link, or fail), or the path itself unless it is one of `ours` (ours to replace); None when nothing."""
    path = out / rel
    for parent in reversed([out / p for p in Path(rel).parents if str(p) != "."]):
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            return parent
    return path if (path.exists() or path.is_symlink()) and rel not in ours else None


def _blocked(out: Path, own: Ownership, new: dict) -> list[str]:
    """New files that cannot go in without replacing something not ours (or writing through a symlink)."""
    owned = set(own.owned)
    return [rel for rel in new if _obstacle(out, rel, ours=owned) is not None]


def _swap(staging: Path, out: Path, own: Ownership, new: dict) -> None:
    """Old own files -> a backup beside `out`, new files -> `out`, manifest; undone on any failure. Killed midway
    (SIGKILL: nothing runs), the next command into `out` undoes it (recover_output -> _undo_swap): the backup's
    manifest, naming the new files, is written before a file moves and removed only once `out`'s final manifest
    is in: while it exists the swap is unfinished, whatever else happened to `out` since (a bench --json into it,
    a rename)."""
    backup = None
    if own.owned:
        backup = _sibling_dir(out, _BACKUP_MARK)
        write_manifest(backup, {rel: own.manifest[rel] for rel in own.owned if rel in own.manifest},
                       backup_of=str(out), swap={"kind": own.kind, "staging": staging.name, "new": new})
    write_manifest(out, _both(own.manifest, new))   # killed midway, every file in `out` is known as either's
    moved_old, moved_new = [], []
    try:
        _move_all(own.owned, out, backup, moved_old)
        _move_all(list(new), staging, out, moved_new)
        write_manifest(out, _merged(own, new))
    except BaseException:
        _move_all(moved_new, out, staging, [])
        _move_all(moved_old, backup, out, [])   # a failure here leaves the backup (the only copy) beside `out`
        restore_manifest(out, own.raw)
        if backup is not None:
            _discard_backup(backup)
        raise
    if backup is not None:
        _discard_backup(backup)
    _prune_dirs(out, own.owned)


def _discard_backup(backup: Path) -> None:
    """Its manifest first: a backup without one is never put back, only cleared (_orphans), wherever the removal
    stops."""
    (backup / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(backup, ignore_errors=True)


def _both(earlier: dict, files: dict) -> dict:
    """A manifest listing the earlier output's files and `files` (each path's new facts, the earlier ones as
    "was"): while one output replaces the other, whatever stands at a path is known as either."""
    both = dict(earlier)
    for rel, facts in files.items():
        was = earlier.get(rel)
        both[rel] = {**facts, **({"was": {"size": was["size"], "sha256": was["sha256"]}} if was else {})}
    return both


def _merged(own: Ownership, new: dict) -> dict:
    """The manifest after a swap: other commands' entries as they were, this command's = the new files."""
    return {**{rel: f for rel, f in own.manifest.items() if f.get("kind") != own.kind}, **new}


def _move_all(names: list[str], src: Path, dst: Path, done: list[str]) -> None:
    for rel in names:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, dst / rel)
        done.append(rel)


def _prune_dirs(out: Path, removed: list[str]) -> None:
    """Folders that held only removed files and are now empty go too (a user's empty folder stays)."""
    dirs = {out / p for rel in removed for p in Path(rel).parents if str(p) != "."}
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


class HeldSignals:
    """From construction until `release()`, Ctrl-C and SIGTERM are held, then delivered (main thread only;
    elsewhere a no-op). For a hold that spans functions: the frame loop starts one when the first Ctrl-C
    stops it, and simulate releases it once the partial result is published."""

    def __init__(self):
        import signal
        import threading

        self.held: list[int] = []
        self.saved = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if handler not in (signal.SIG_IGN, None):
                self.saved[sig] = handler
                signal.signal(sig, lambda signum, frame: self.held.append(signum))

    def release(self, *, deliver: bool = True) -> None:
        """Restores the handlers and delivers the first signal held, unless deliver=False (the command is
        already ending on an interrupt, whose kind its report and exit code name)."""
        import signal

        saved, self.saved = self.saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if deliver and self.held and self.held[0] in saved:
            _deliver(self.held[0], saved[self.held[0]])


@contextlib.contextmanager
def deferred_signals():
    """Ctrl-C and SIGTERM that arrive inside the block are held and delivered when it ends, so a swap or a
    last write is never cut in half."""
    hold = HeldSignals()
    try:
        yield hold   # hold.held: what arrived so far (a caller may decide differently once interrupted)
    finally:
        hold.release()


def _deliver(sig: int, handler) -> None:
    import signal

    if callable(handler):
        handler(sig, None)          # raises KeyboardInterrupt (or contract.errors.Terminated)
    else:
        signal.raise_signal(sig)    # SIG_DFL: what the signal would have done


class InPlace:
    """A command writing straight into its folder (train): `record` each file once written."""

    def __init__(self, out: Path, kind: str, backup: Path | None, earlier: Ownership | None):
        self.out, self.kind, self.backup, self.earlier = out, kind, backup, earlier
        self.files: dict[str, dict] = {}
        self.kept = backup is None

    def record(self, *paths: Path) -> None:
        """Adds these files (as they are now) to the manifest as this command's."""
        self.files.update(record_outputs(self.out, self.kind, *paths))

    def owns(self, path: Path) -> bool:
        """`path` (under `out`, as the command names it) is this command's file, unchanged since it was written
        (earlier, or by this run)."""
        rel = Path(path).relative_to(self.out).as_posix()
        return rel in self.files or bool(self.earlier and rel in self.earlier.owned)

    def pending(self, path: Path):
        """atomic_write's before_replace for a file this command writes at `path`: the manifest lists the new
        file before the rename, keeping the one it replaces (when it was this command's, unchanged) as "was":
        killed between the two, either file is this command's. `record` afterwards drops the "was"."""
        def hook(tmp: Path) -> None:
            rel = Path(path).relative_to(self.out).as_posix()   # as named: never through a link (refused before)
            facts, here = file_facts(tmp, self.kind), self.out / rel
            with writers_in_turn(self.out):
                manifest = read_manifest(self.out)
                old = manifest.get(rel)
                if old and old.get("kind") == self.kind and here.is_file() and not here.is_symlink() \
                        and file_facts(here, self.kind) == {k: v for k, v in old.items() if k != "was"}:
                    facts["was"] = {"size": old["size"], "sha256": old["sha256"]}
                self.files[rel] = {k: v for k, v in facts.items() if k != "was"}
                write_manifest(self.out, {**manifest, rel: facts})
        return hook

    def checkpointed(self) -> None:
        """The new output is worth keeping from now on, even if it fails or is interrupted (a resumable
        checkpoint). The backup says so too: if this process is killed, the next run keeps the new output."""
        if self.backup is not None and not self.kept:
            write_manifest(self.backup, read_manifest(self.backup), backup_of=str(self.out), superseded=True)
        self.kept = True

    def _rollback(self) -> None:
        """Removes what this run wrote (unchanged files only) and puts the earlier output back. The manifest goes
        first, listing the earlier output's files and this run's (each file's facts, the other's as "was"): killed
        midway, what stands in `out` is known as either, and the next command puts the backup back and moves this
        run's files aside (restore_left_backup); the earlier manifest itself goes back last."""
        write_manifest(self.out, _both(self.earlier.manifest, self.files))   # the earlier: as read when it started
        for rel in self.files:
            path = self.out / rel
            if path.is_file() and not path.is_symlink() and file_facts(path, self.kind) == self.files[rel]:
                path.unlink()
        _prune_dirs(self.out, list(self.files))
        moved = tree_files(self.backup)
        _move_all([rel for rel in moved if not (self.out / rel).exists()], self.backup, self.out, [])
        restore_manifest(self.out, self.earlier.raw)


def _in_place_ownership(out: Path, kind: str, *, force: bool, resume: bool, expect: tuple[str, ...]):
    """What `out` holds for an in-place writer, after a killed write's leftovers are gone; refuses (UserError) what
    the options do not allow: without force or resume any earlier output, with resume alone a file of `expect`
    that is not the one edgevit wrote there."""
    own = ownership(out, kind) if out.is_dir() else None
    if own and own.leftovers:   # a killed write's temporary files (this code's, by their mark): garbage
        with deferred_signals():
            for rel in own.leftovers:
                (out / rel).unlink(missing_ok=True)
        own = ownership(out, kind)
    if own is not None:   # never written through a link, never a file where a folder stands: before any work
        for rel in expect:
            stands = _obstacle(out, rel, ours=set(own.owned))
            if stands is not None and (stands != out / rel or stands.is_symlink() or stands.is_dir()):
                what = "a symlink" if stands.is_symlink() else "a folder" if stands.is_dir() else "a file"
                raise UserError(f"{out}: {stands} is {what} where this {kind} writes {rel}; edgevit never writes "
                                "through it or over it: move it away, or choose another --out")
    if own and resume and not force:   # a resumed run rewrites its files in place: never over one it did not write
        listed = any(f.get("kind") == kind for f in own.manifest.values())   # a run from before manifests: as is
        edited = [n for n in expect if listed and n in own.foreign and (out / n).exists()]
        if edited:
            raise UserError(f"{out}: {own.describe(edited)} is not the file edgevit wrote there, and --resume "
                            "rewrites it; keep your copy elsewhere, then move it out of the folder, or continue with "
                            "--resume --force (it is overwritten)")
    if own and not resume and (own.owned or own.foreign) and not force:
        held = (f"an earlier {kind} ({own.describe(own.owned)})" if own.owned else "") + \
            (" and " if own.owned and own.foreign else "") + \
            (f"files it did not write ({own.describe(own.foreign)})" if own.foreign else "")
        edited = [n for n in expect if n in own.changed]
        raise UserError(f"{out} already holds {held}; " + (
            f"{', '.join(edited)} changed since edgevit wrote it: move it out of the folder to continue with "
            "--resume, or " if edited else "continue it with --resume, ") +
            "start over with --force (replaces only the earlier run's own files, keeps yours), or choose another "
            "--out")
    return own


def _move_aside(out: Path, backup: Path, own: Ownership) -> None:
    """The earlier output's own files into `backup` (its manifest first, for restore_left_backup), the folder's
    manifest without them."""
    write_manifest(backup, {rel: own.manifest[rel] for rel in own.owned}, backup_of=str(out))
    _move_all(own.owned, out, backup, [])
    write_manifest(out, {rel: f for rel, f in own.manifest.items() if f.get("kind") != own.kind})
    _prune_dirs(out, own.owned)


@contextlib.contextmanager
def written_in_place(out: Path, *, kind: str, force: bool, resume: bool = False, expect: tuple[str, ...] = ()):
    """For a command that writes into `out` as it goes. Without force or resume `out` must be new or empty
    (besides a manifest). resume: continue, recording new files, refused when a file of `expect` was changed since
    (with force too: overwritten). force: the earlier `kind` output's own files
    move to a backup beside `out` (everything else stays); the backup is restored if the block fails or is
    interrupted before `checkpointed()`, and removed once the block succeeds or fails after it (from the first
    checkpoint on the new run is the one kept: resumable, as after a Ctrl-C)."""
    out = resolve_out(out)
    recover_output(out, what=kind)   # the callers have done so already under their lock; nothing is left then
    own = _in_place_ownership(out, kind, force=force, resume=resume, expect=expect)
    replacing = bool(own and not resume and (own.owned or own.foreign))
    if replacing:
        check_output_folder(out, kind=kind, force=True, expect=expect)
    # The backup may hold the only copy of the earlier run: it goes only once it is no longer needed (the
    # new run succeeded or was kept) or once the rollback has put all of it back. A rollback cut short (a
    # second Ctrl-C before its hold, a failure inside it) leaves the backup beside `out`. A Ctrl-C while the
    # backup is made is held until the rollback below can undo it.
    backup, writer, created = None, None, not out.exists()
    done = failed = False
    hold = HeldSignals()
    try:
        if replacing:
            backup = _sibling_dir(out, _BACKUP_MARK)
            _move_aside(out, backup, own)
        out.mkdir(parents=True, exist_ok=True)
        writer = InPlace(out, kind, backup, own)
        hold.release()   # a Ctrl-C held meanwhile stops the command here, rolled back below
        yield writer
        done = True
    except BaseException:
        hold.release(deliver=False)
        failed = True
        if backup is not None and (writer is None or not writer.kept):
            with deferred_signals():
                (writer or InPlace(out, kind, backup, own))._rollback()
                done = not tree_files(backup)   # what could not go back (a path taken meanwhile) stays
        else:
            done = True
            if backup is not None:   # after a checkpoint the new run is kept
                print(f"note: the new run in {out} is kept (it reached its first checkpoint; the earlier run it "
                      "replaced is gone): continue it with --resume", file=sys.stderr)
        raise
    finally:
        if backup is not None and done:
            _discard_backup(backup)
        if created and failed:
            with contextlib.suppress(OSError):   # a run that failed before writing anything leaves no folder
                out.rmdir()


def restore_left_backup(out: Path) -> None:
    """A replaced run's backup left beside `out` (the process was killed, or its rollback cut short) holds the
    only copy of that run: it goes back into `out`, with its manifest entries, before anything else happens
    (the run it was replaced by never finished). When a file of the same name is in the way, the run is
    refused naming the backup: nothing is overwritten."""
    for backup in _left_backups(out):
        files, entries, fields = tree_files(backup), read_manifest(backup), manifest_fields(backup)
        if isinstance(fields.get("swap"), dict):
            _undo_swap(out, backup, fields["swap"])
            continue
        if fields.get("superseded"):   # never put back by itself, never removed
            if backup not in _NOTED:   # once per command (train and written_in_place both look)
                _NOTED.add(backup)
                print(f"note: {backup} holds the earlier {out.name} that a --force run replaced; that run reached "
                      "its first checkpoint before it was killed, so it is the one kept (as after a Ctrl-C). The "
                      f"backup is a whole run with its manifest: rename it to keep it as a run of its own (mv "
                      f"{backup} {out.parent / (out.name + '-earlier')}), or delete it", file=sys.stderr)
            continue
        if out.exists() and not out.is_dir():
            raise UserError(f"{backup} holds an earlier {out.name} that a --force run did not finish replacing, and "
                            f"{out} is now a file where it goes back: move that file aside and run again")
        stands = {rel: _obstacle(out, rel) for rel in files}
        through = [rel for rel, p in stands.items() if p is not None and (p != out / rel or p.is_dir())]
        if through:   # a link or a file where one of its folders goes: never moved through, never moved
            raise UserError(f"{backup} holds an earlier {out.name} that a --force run did not finish replacing, and "
                            f"{stands[through[0]]} stands where it goes back: move that aside and run again")
        # What stands at a file's own place was written by the run that was killed before its first checkpoint
        # (or put there since): it goes aside, never away, and the earlier run goes back.
        taken = [rel for rel, p in stands.items() if p is not None]
        killed = read_manifest(out)
        users = [rel for rel in taken if not (rel in killed and _matches(out / rel, killed[rel]))]
        if users:   # put there by the user since the kill: theirs, never moved
            raise UserError(f"{backup} holds an earlier {out.name} that a --force run did not finish replacing, and "
                            f"{out / users[0]} (not written by that run) stands where it goes back: move it aside and "
                            "run again")
        with deferred_signals():
            aside = _sibling_dir(out, _KILLED_MARK) if taken else None
            if aside is not None:
                _move_all(taken, out, aside, [])
            out.mkdir(parents=True, exist_ok=True)
            # the manifest first: killed midway, the files already back are listed (a backup left holding only
            # its manifest still names, below, those that went back before)
            back = {rel: f for rel, f in entries.items()
                    if rel in files or (rel not in taken and (out / rel).is_file() and not (out / rel).is_symlink()
                                        and _matches(out / rel, f))}
            present = {rel: f for rel, f in killed.items() if rel not in taken}   # moving aside left it as is
            write_manifest(out, {**present, **back})
            _move_all(files, backup, out, [])
            _discard_backup(backup)
            if not files:
                continue
        print(f"note: put back the earlier {out.name} from {backup.name}, which a --force run that never reached its "
              f"first checkpoint had moved aside ({len(files)} file(s))"
              + (f"; what that run had written so far is in {aside}" if aside is not None else ""), file=sys.stderr)


def _undo_swap(out: Path, backup: Path, swap: dict) -> None:
    """Puts back the earlier output a swap killed midway had moved into `backup`: the new files it had moved into
    `out` go (its own, unchanged: those it did not move are in its staging folder, which goes too), the earlier
    ones come back, and the manifest lists them again beside every other command's entries. Each step can be
    repeated: killed during this, the backup's manifest still says so and the next command finishes it. A file
    that is not the swap's where an earlier one goes back refuses the command, naming it (nothing is moved)."""
    kind, new, entries = swap.get("kind"), swap.get("new"), read_manifest(backup)
    if not isinstance(kind, str) or not isinstance(new, dict):
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"{backup} holds the earlier {out.name} that a command killed while it replaced it had moved "
                        f"aside, and {out} is now a file where it goes back: move that file aside and run again")
    files = tree_files(backup)
    with deferred_signals():
        for rel, facts in new.items():   # where an earlier file is still in place (never moved), it stays
            path = out / rel
            if (rel in files or rel not in entries) and isinstance(facts, dict) and path.is_file() \
                    and not path.is_symlink() and _matches(path, {k: v for k, v in facts.items() if k != "was"}):
                path.unlink()
        blocked = [rel for rel in files if _obstacle(out, rel) is not None]
        if blocked:
            raise UserError(f"{backup} holds the earlier {out.name} that a command killed while it replaced it had "
                            f"moved aside, and {_obstacle(out, blocked[0])} (not that command's) stands where it goes "
                            "back: move it aside and run again")
        out.mkdir(parents=True, exist_ok=True)
        _move_all(files, backup, out, [])
        others = {rel: f for rel, f in read_manifest(out).items() if f.get("kind") != kind}
        write_manifest(out, {**others, **{rel: f for rel, f in entries.items() if (out / rel).is_file()}})
        _prune_dirs(out, list(new))
        staging = out.parent / str(swap.get("staging"))
        if is_marked(staging.name, f".{out.name}{_STAGING_MARK}") and staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
        _discard_backup(backup)
    print(f"note: put back the earlier {out.name} from {backup.name}: the command that was replacing it was killed "
          f"while it swapped its results in ({len(files)} file(s) back); run that command again", file=sys.stderr)


def _siblings(out: Path, mark: str) -> list[Path]:
    """Folders beside `out` that edgevit made with `mark` (by their names; mkdtemp's 8 characters before they were
    marked), in name order; never a symlink."""
    import re

    prefix = f".{out.name}{mark}"
    legacy = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")
    try:
        names = [p for p in out.parent.iterdir() if p.name.startswith(prefix)] if out.parent.is_dir() else []
    except OSError:
        return []
    return sorted(p for p in names if (is_marked(p.name, prefix) or legacy.fullmatch(p.name))
                  and p.is_dir() and not p.is_symlink())


def _left_backups(out: Path) -> list[Path]:
    """Backups written_in_place or a swap left beside `out` (see _is_backup), in name order."""
    return [p for p in _siblings(out, _BACKUP_MARK) if _is_backup(p)]


def _orphans(out: Path) -> list[Path]:
    """What a killed command left beside `out` that holds nothing of anyone's: a staging folder (its output was
    never published; this process's own are in use), a backup folder without its manifest (no file moves into one
    before the manifest is written, and the manifest goes only once the backup is no longer needed: killed before
    the one or while it was removed), an empty folder for a killed run's files. Only edgevit's marked names."""
    stagings = [p for p in _siblings(out, _STAGING_MARK) if is_marked(p.name, f".{out.name}{_STAGING_MARK}")
                and p not in _STAGING]
    done = [p for p in _siblings(out, _BACKUP_MARK) if is_marked(p.name, f".{out.name}{_BACKUP_MARK}")
            and not (p / MANIFEST).exists()]
    empty = [p for p in _siblings(out, _KILLED_MARK) if is_marked(p.name, f".{out.name}{_KILLED_MARK}")
             and not any(p.iterdir())]
    return stagings + done + empty


def recover_output(out: str | Path, *, what: str) -> None:
    """The first thing any command writing `out` does, before it reads what the folder holds, under `out`'s lock
    (taken here unless this process holds it): a backup a killed command left goes back (restore_left_backup), and
    what else it left beside `out` goes (_orphans)."""
    out = resolve_out(out)
    if not _left_backups(out) and not _orphans(out) and not _manifest_temps(out):
        return
    with contextlib.ExitStack() as held:
        if out not in _HELD:
            try:
                held.enter_context(folder_lock(out, what=what))
            except FolderBusy:   # a live command is writing `out`: its staging folder or backup is in use, not left
                return           # (a --json into the folder then waits for it; a command writing it is refused)
        restore_left_backup(out)
        for path in _orphans(out):
            shutil.rmtree(path, ignore_errors=True)
        with writers_in_turn(out) if out.is_dir() else contextlib.nullcontext():   # no --json mid-write
            for path in _manifest_temps(out):
                path.unlink(missing_ok=True)


def recover_input(path: str | Path, *, what: str) -> None:
    """Before a command reads `path` (a checkpoint, an export folder, a model file): an output folder holding it that
    a killed command left half replaced (the earlier output moved aside beside it) is put back first, as the next
    command writing that folder would; else this command reads files that recovery then discards (an export built
    from a killed --force run's best.pt, named as the run's). A folder a live command is writing is left to it."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):   # a loop of links, a NUL: the command names it when it reads
        return
    for folder in [real, *real.parents]:
        if folder.parent == folder or not (_left_backups(folder) or _orphans(folder)):
            continue
        try:   # recover_output leaves a busy folder alone; here a busy one may refuse the read
            with contextlib.nullcontext() if folder in _HELD else folder_lock(folder, what=what):
                recover_output(folder, what=what)   # (what else it left beside the folder goes too)
        except FolderBusy as e:   # a live command: while it replaces the folder (its earlier output moved aside,
            # the new one not yet kept), what stands there is half of either; a staging folder alone harms nothing
            if any(not manifest_fields(b).get("superseded") for b in _left_backups(folder)):
                busy = str(e).replace(", or write elsewhere", "")
                raise UserError(f"{path} cannot be read now: {busy} (it is replacing that folder, so what is there "
                                "is not a whole output)") from None


def _manifest_temps(out: Path) -> list[Path]:
    """A killed write's temporary file in `out` (by its marked name) of the manifest or of a file the manifest lists
    (any command's): nobody's. Its name alone says so; nothing is read."""
    if not out.is_dir() or out.is_symlink():
        return []
    listed = set(read_manifest(out)) | {MANIFEST}
    temps = []
    for rel in tree_files(out):
        folder, _, name = rel.rpartition("/")
        target = temp_target(name)
        path = out / rel
        # listed: of any command's file; at the top, unlisted too (a --json killed before its first rename; every
        # live writer of the folder's top holds its lock or its writers' turn, which the caller holds)
        if target is not None and ((f"{folder}/{target}" if folder else target) in listed or not folder) \
                and path.is_file() and not path.is_symlink():
            temps.append(path)
    return temps


def _is_backup(folder: Path) -> bool:
    """A backup written_in_place made: its manifest says so and was written for a folder of this very name.
    Not a user's folder of a similar name, nor a copy or a renamed backup (the random name differs; `cp -a`
    takes the manifest along); a whole project copied or moved elsewhere keeps its backups."""
    fields = manifest_fields(folder)
    where = fields.get("folder")
    return (bool(fields.get("backup_of")) and isinstance(where, dict)
            and Path(str(where.get("path"))).name == folder.name)


def record_outputs(folder: Path, kind: str, *paths: Path) -> dict[str, dict]:
    """Records files a command just wrote into `folder` (as they are now) in its manifest as `kind`'s;
    for commands that write in place (train, search). Returns their entries."""
    folder = resolve_out(folder)
    files = {}
    for path in paths:
        rel = resolve_out(path).relative_to(folder).as_posix()
        files[rel] = file_facts(folder / rel, kind)
    with writers_in_turn(folder):   # read, add, write: one command at a time (a bench --json beside a training)
        write_manifest(folder, {**read_manifest(folder), **files})
    return files


@contextlib.contextmanager
def writers_in_turn(folder: Path):
    """One writer at a time reads, changes and writes `folder`'s manifest (search's workers sharing a folder, a
    bench --json into a folder a training writes): a lock on the folder itself, so no manifest write loses another's
    entry. Re-entrant within a process (a writer's turn may record files)."""
    import fcntl

    folder = resolve_out(folder)
    if folder in _TURNS:
        _TURNS[folder] += 1
        try:
            yield
        finally:
            _TURNS[folder] -= 1
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _TURNS[folder] = 1
        yield
    finally:
        _TURNS.pop(folder, None)
        os.close(fd)


def unchanged_outputs(folder: Path, kind: str, names: tuple[str, ...]) -> list[str]:
    """Of `names` present in `folder`, those that are not `kind`'s unchanged files (a command that rewrites
    them in place must not); a folder whose manifest lists nothing of `kind` (written before manifests)
    is taken as it is."""
    manifest = read_manifest(resolve_out(folder))
    if not any(f.get("kind") == kind for f in manifest.values()):
        return []
    own = ownership(resolve_out(folder), kind)
    return [n for n in names if (folder / n).exists() and n not in own.owned]


def check_output_file(path: str | Path, *, kind: str, force: bool = False, inputs: tuple = (),
                      option: str = "--json") -> Path:
    """Before any work: the real path a single-file output (--json) may be written to. Refuses a folder,
    an input of this command (or a file inside an input folder), and, without force, an existing file that
    is not this command's unchanged earlier output."""
    from contract.files import check_writable

    real = resolve_out(path, option=option)
    if real.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file path, e.g. {Path(path) / (kind + '.json')}")
    if real.name == MANIFEST or (real.name.startswith(".") and real.name.endswith(_LOCK_SUFFIX)):
        raise UserError(f"{option} {path}: that name is edgevit's own bookkeeping (the folder's manifest or a lock); "
                        "choose another file name")
    if len(os.fsencode(real.name)) > _MAX_FILE_NAME:
        raise UserError(f"{option} {path}: its name is {len(os.fsencode(real.name))} bytes long; edgevit writes it "
                        f"through a temporary file beside it under a longer name, so at most {_MAX_FILE_NAME}: "
                        "choose a shorter file name")
    for p in inputs:
        src = resolve_out(p)
        if real == src or (src.is_dir() and _inside(real, src) and real.exists()):
            raise UserError(f"{option} {path} is an input of this command ({p}); write the results elsewhere")
    check_writable(real.parent, option=option)
    recover_output(real.parent, what=kind)   # a command killed while it replaced that folder's output: undone first
    recover_input(real.parent, what=kind)    # ... or an output folder holding it (--json art/fp32/bench.json)
    if real.exists() and not real.is_file():
        raise UserError(f"{option} {path} is not a regular file (a FIFO, socket or device); choose another {option}")
    manifest = real.parent / MANIFEST
    if manifest.exists() and not manifest.is_file() or manifest.is_symlink():
        raise UserError(f"{manifest} is not edgevit's manifest (a folder, link or special file by its name), and "
                        f"{option} records what it writes there; move it or choose another {option}")
    if (real.exists() or real.is_symlink()) and not force:
        facts = read_manifest(real.parent).get(real.name)
        if not (facts and facts.get("kind") == kind and file_facts(real, kind) == facts):
            raise UserError(f"{option} {path} exists and was not written by an earlier {kind} (or was changed "
                            f"since); choose another {option}, or add --force to overwrite it")
    return real


def publish_file(path: Path, text: str, *, kind: str) -> None:
    """Writes `text` to the (checked) output file atomically and records it in its folder's manifest."""
    from contract.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)   # check_output_file allowed folders still to be made
    _wait_for_writer(path.parent)
    with writers_in_turn(path.parent), deferred_signals():   # another command's manifest write loses nothing
        atomic_write(path, lambda p: p.write_text(text))
        write_manifest(path.parent, {**read_manifest(path.parent), path.name: file_facts(path, kind)})


def _wait_for_writer(folder: Path) -> None:
    """A command that holds `folder`'s lock (an export, a simulation) is writing it: a --json into the folder waits
    until it is done. Written meanwhile, the file would make that command's publish refuse the folder and throw
    its finished results away. The lock file is only read, never made (its place, beside the folder, may not be
    writable by a --json's user)."""
    import fcntl

    folder = resolve_out(folder)
    if folder in _HELD:
        return
    try:
        fd = os.open(folder.with_name(f".{folder.name}{_LOCK_SUFFIX}"), os.O_RDONLY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:   # a training may hold it for hours: say what the wait is for
            print(f"waiting for the {_holder(fd)} writing {folder} to finish before writing into it (Ctrl-C to "
                  "stop)", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_SH)   # blocks while the holder's exclusive lock lasts
    finally:
        os.close(fd)


def remove_outputs(folder: Path) -> list[str]:
    """What `make clean` does to one of the make targets' folders: removes every file its manifest lists and
    that is unchanged since (any command's), then the folders that emptied, and the manifest once nothing is
    left in it; keeps everything else. Only the folder's own manifest counts: a folder below it with a
    manifest of its own (a copy of a run the user put there) is the user's. Returns the removed files."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    kinds = {f["kind"] for f in read_manifest(folder).values()}
    owned = sorted({rel for kind in kinds for rel in ownership(folder, kind).owned})
    with writers_in_turn(folder), deferred_signals():
        for rel in owned:
            (folder / rel).unlink()
        write_manifest(folder, {rel: f for rel, f in read_manifest(folder).items() if rel not in owned})
        _prune_dirs(folder, owned)
    with contextlib.suppress(OSError):
        folder.rmdir()
    return [str(folder / rel) for rel in owned]


def _main(argv: list[str]) -> int:
    """`python -m contract.outputs clean PATH...`: remove_outputs on each PATH (make clean)."""
    if len(argv) < 1 or argv[0] != "clean":
        print("usage: python -m contract.outputs clean PATH...")
        return 2
    for path in argv[1:]:
        if Path(path).is_symlink():
            print(f"clean: {path} is a symlink: not followed; clean the folder it points to")
            continue
        real = resolve_out(path)
        if not real.is_dir() and not _left_backups(real) and not _orphans(real):
            continue
        try:   # never while a command writes it (a training's checkpoints would go, then come back half)
            with folder_lock(Path(path), what="make clean"):
                recover_output(Path(path), what="make clean")   # a killed replacement's backup goes back, then away
                gone = remove_outputs(Path(path))
        except UserError as e:
            print(f"clean: {e}")
            return 2
        if gone:
            print(f"clean: {path}: removed {len(gone)} file(s) edgevit wrote"
                  + ("" if not Path(path).exists() else "; the rest is not edgevit's and stays"))
    return 0


class FolderBusy(UserError):
    """Another process holds the folder's lock (a caller that can do other work first may come back)."""


@contextlib.contextmanager
def folder_lock(folder: Path, *, what: str):
    """Exclusive lock on `folder`, keyed by its real path (a `.NAME.lock` file beside it, removed
    afterwards); a second run into the same folder, by whatever path, fails at once with a UserError."""
    import fcntl

    folder = resolve_out(folder)
    _check_name_room(folder)
    made = [p for p in [folder.parent, *folder.parent.parents] if not p.exists()]   # what goes once we are done
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        file = not_a_folder(folder.parent)
        raise UserError(f"cannot make the folder {folder.parent} ({e.strerror}{f': {file} is a file' if file else ''}"
                        "); choose another --out") from None
    lock = folder.with_name(f".{folder.name}{_LOCK_SUFFIX}")
    retries = 0
    while True:
        try:   # a file of that name that is not our lock (a user's) is used as the lock, never removed
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, _LOCK_MARK + what.encode("utf-8", "replace") + b"\n")   # who holds it, for the others
        except FileNotFoundError:   # another locker removed the empty parent folder it had made: make it again
            retries += 1
            if retries > 100:
                raise
            folder.parent.mkdir(parents=True, exist_ok=True)
            continue
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:   # its holder removed it just now, or it is a link to nothing
                if lock.is_symlink():
                    raise UserError(f"{lock} is a symlink to nothing where edgevit keeps the lock of {folder}; "
                                    "remove it and run again") from None
                continue
            except IsADirectoryError:
                raise UserError(f"{lock} is a folder where edgevit keeps the lock of {folder}; move it away and "
                                "run again") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(fd, folder) from None
        try:   # the holder before us removes the file as it lets go: a lock on that file locks nothing
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _HELD.add(folder)
    try:
        yield
    finally:
        _HELD.discard(folder)
        with contextlib.suppress(OSError):
            if os.pread(fd, 200, 0).startswith(_LOCK_MARK):
                lock.unlink()
        os.close(fd)
        for parent in made:   # folders made only to hold the lock (a run that wrote nothing): empty ones go
            with contextlib.suppress(OSError):
                parent.rmdir()


def _holder(fd: int) -> str:
    """What the command holding a lock file wrote into it ("training run", "export", ...), else "command"."""
    held = os.pread(fd, 200, 0)
    return held[len(_LOCK_MARK):].decode("utf-8", "replace").strip() \
        if held.startswith(_LOCK_MARK) and held != _LOCK_MARK else "command"


def _busy(fd: int, folder: Path) -> FolderBusy:
    """The refusal naming the command that holds the lock (what it wrote into the lock file); closes `fd`."""
    holder = _holder(fd)
    os.close(fd)
    return FolderBusy(f"{'an' if holder[:1] in 'aeiou' else 'a'} {holder} is writing {folder} right now; wait for it "
                      "to finish, or write elsewhere")


def not_a_folder(path: Path) -> Path | None:
    """The first of `path` and its parents that exists but is not a folder."""
    return next((p for p in [*reversed(path.parents), path] if p.exists() and not p.is_dir()), None)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
