"""Ownership by manifest (issue 20): a command replaces only the files it wrote and that are unchanged
since, anywhere in its folder's tree; --force means "replace my earlier outputs", never "delete yours";
a replacement happens whole, only after success, and a Ctrl-C at any moment leaves the old outputs or a
valid partial result; --out is resolved (symlinks followed) before it is locked."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_unchanged, assert_user_error, run_cli, snapshot, start_cli

from contract.errors import EXIT_INTERRUPTED, UserError
from contract.manifest import MANIFEST, read_manifest
from contract.outputs import (
    check_output_file,
    check_output_folder,
    deferred_signals,
    folder_lock,
    make_staging,
    publish,
    publish_file,
    remove_outputs,
    restore_left_backup,
    written_in_place,
)


def _stage(out, files: dict[str, str]) -> Path:
    staging = make_staging(out)
    for name, text in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text)
    return staging


def _beside(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


# --- the mechanism (contract.outputs) -------------------------------------------------------------------------

def test_a_users_file_in_a_subfolder_is_kept_and_refuses_without_force(tmp_path):
    out = tmp_path / "o"
    publish(_stage(out, {"a.txt": "1", "fp32/m": "x", "fp32/old_only": "o"}), out, kind="export")
    (out / "fp32" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="fp32/notes.txt"):
        check_output_folder(out, kind="export")
    with pytest.raises(UserError, match="fp32/notes.txt"):
        publish(_stage(out, {"a.txt": "2"}), out, kind="export")
    publish(_stage(out, {"a.txt": "2", "fp32/m": "y"}), out, kind="export", force=True)
    assert (out / "fp32" / "notes.txt").read_text() == "mine" and (out / "fp32" / "m").read_text() == "y"
    assert not (out / "fp32" / "old_only").exists(), "the earlier export's own files are replaced"
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == ["a.txt", "fp32/m"]
    assert _beside(tmp_path) == ["o"], "no staging or backup left beside it"


def test_an_edited_output_is_the_users_and_force_does_not_replace_it(tmp_path):
    out = tmp_path / "o"
    publish(_stage(out, {"report.json": "1", "x.png": "p"}), out, kind="simulate")
    (out / "report.json").write_text("edited by hand")
    with pytest.raises(UserError, match="report.json .changed since"):
        check_output_folder(out, kind="simulate")
    with pytest.raises(UserError, match="--force keeps"):
        check_output_folder(out, kind="simulate", force=True, expect=("report.json",))
    before = snapshot(out)
    with pytest.raises(UserError, match="report.json"):
        publish(_stage(out, {"report.json": "2"}), out, kind="simulate", force=True)
    assert_unchanged(before, out, "refused publish")
    assert _beside(tmp_path) == ["o"]
    publish(_stage(out, {"other.json": "3"}), out, kind="simulate", force=True)   # no clash: the edit stays
    assert (out / "report.json").read_text() == "edited by hand" and not (out / "x.png").exists()


def test_another_commands_files_are_kept_and_stay_in_the_manifest(tmp_path):
    out = tmp_path / "o"
    publish(_stage(out, {"model.onnx": "m"}), out, kind="export")
    with pytest.raises(UserError, match="model.onnx"):
        check_output_folder(out, kind="simulate")
    publish(_stage(out, {"report.json": "r"}), out, kind="simulate", force=True)
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert {k: v["kind"] for k, v in files.items()} == {"model.onnx": "export", "report.json": "simulate"}
    publish(_stage(out, {"model.onnx": "m2"}), out, kind="export", force=True)
    assert (out / "report.json").read_text() == "r" and (out / "model.onnx").read_text() == "m2"


def test_a_manifest_from_before_the_checksums_owns_only_files_not_newer_than_it(tmp_path):
    out = tmp_path / "o"
    (out / "fp32").mkdir(parents=True)
    (out / "fp32" / "model.tflite").write_text("old")
    (out / MANIFEST).write_text(json.dumps({"kind": "export", "entries": ["fp32"]}))
    old = time.time() - 100
    for p in (out / "fp32" / "model.tflite", out / MANIFEST):
        os.utime(p, (old, old))
    check_output_folder(out, kind="export")                     # its own file: replaceable
    (out / "fp32" / "notes.txt").write_text("added later")
    with pytest.raises(UserError, match="fp32/notes.txt"):
        check_output_folder(out, kind="export")


def test_deferred_signals_hold_ctrl_c_until_the_block_ends():
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)   # as a terminal's process has it
    try:
        steps = []
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                signal.raise_signal(signal.SIGINT)
                steps.append("finished the swap")
        assert steps == ["finished the swap"]
    finally:
        signal.signal(signal.SIGINT, saved)


def test_out_dot_and_symlinked_out(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    publish(_stage(Path("."), {"a.txt": "1"}), Path("."), kind="export")
    publish(_stage(Path("."), {"a.txt": "2"}), Path("."), kind="export")
    assert (here / "a.txt").read_text() == "2" and Path.cwd() == here
    target, link = tmp_path / "target", tmp_path / "link"
    target.mkdir()                                         # a link to an empty folder
    link.symlink_to(target, target_is_directory=True)
    publish(_stage(link, {"r.json": "1"}), link, kind="simulate")
    publish(_stage(link, {"r.json": "2"}), link, kind="simulate")
    assert link.is_symlink() and (target / "r.json").read_text() == "2"
    assert _beside(tmp_path) == ["here", "link", "target"]


def test_the_lock_is_keyed_by_the_real_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run_link").symlink_to(tmp_path / "run", target_is_directory=True)
    with folder_lock(tmp_path / "run", what="training run"):
        with pytest.raises(UserError, match="a training run is writing"):
            with folder_lock(tmp_path / "run_link", what="training run"):
                pass


def test_a_json_output_refuses_files_it_did_not_write_and_its_inputs(tmp_path):
    model, out = tmp_path / "model.tflite", tmp_path / "bench.json"
    model.write_bytes(b"tflite")
    out.write_text("a user's notes")
    with pytest.raises(UserError, match="--force"):
        check_output_file(out, kind="bench", inputs=(model,))
    with pytest.raises(UserError, match="input of this command"):
        check_output_file(model, kind="bench", force=True, inputs=(model,))
    out.unlink()
    publish_file(check_output_file(out, kind="bench", inputs=(model,)), '{"r": 1}\n', kind="bench")
    publish_file(check_output_file(out, kind="bench", inputs=(model,)), '{"r": 2}\n', kind="bench")  # its own
    out.write_text("edited")
    with pytest.raises(UserError, match="changed"):
        check_output_file(out, kind="bench")
    assert model.read_bytes() == b"tflite"


@pytest.mark.parametrize("model, json_out, extra", [
    ("int8/model.json", "int8/model.tflite", ()),                  # the model a model.json names
    ("int8", "samples.npz", ("--input", "samples")),               # the default sample pack it reads
    ("int8/model.tflite", "int8/model.json", ()),                  # the card beside a .tflite
])
def test_bench_json_never_overwrites_what_it_reads_even_with_force(tmp_path, model, json_out, extra):
    art = tmp_path / "art"
    (art / "int8").mkdir(parents=True)
    for name in ("int8/model.json", "int8/model.tflite", "samples.npz"):
        (art / name).write_text(f"the export's {name}")
    before = snapshot(art)
    proc = run_cli("bench", str(art / model), "--json", str(art / json_out), "--force", *extra, timeout=120)
    assert_user_error(proc, "input of this command")
    assert_unchanged(before, art, "bench --json over its own input")


def _run_files(out: Path, text: str, writer) -> None:
    for name in ("best.pt", "baseline/best.pt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
        writer.record(out / name)


@pytest.mark.parametrize("how", [RuntimeError, KeyboardInterrupt])
def test_written_in_place_restores_the_earlier_run_when_the_new_one_fails(tmp_path, how):
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    (out / "baseline" / "README.txt").write_text("mine")
    before = snapshot(out)
    with pytest.raises(UserError, match="--force"):
        with written_in_place(out, kind="train", force=False):
            pass
    with pytest.raises(how):
        with written_in_place(out, kind="train", force=True) as w:
            assert not (out / "best.pt").exists() and (out / "baseline" / "README.txt").exists()
            _run_files(out, "new", w)
            raise how()
    assert_unchanged(before, out, "after a failed --force run")
    assert snapshot(out).keys() == before.keys() and _beside(tmp_path) == ["run"]


def test_a_new_output_folder_gets_the_usual_mode_not_mkdtemps_private_one(tmp_path):
    out = tmp_path / "sim"
    staging = make_staging(out)
    (staging / "report.json").write_text("{}")
    publish(staging, out, kind="simulate")
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_rollback_cut_short_keeps_the_earlier_run_in_its_backup(tmp_path, monkeypatch):
    """A second Ctrl-C that lands before the rollback holds signals (or a failure inside the rollback): the
    backup, the only copy of the earlier run, must stay beside the folder, never be deleted."""
    import contract.outputs as outputs

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)

    def second_ctrl_c(self):
        raise KeyboardInterrupt("second Ctrl-C")

    monkeypatch.setattr(outputs.InPlace, "_rollback", second_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with written_in_place(out, kind="train", force=True) as w:
            _run_files(out, "new", w)
            raise KeyboardInterrupt
    backups = [p for p in tmp_path.iterdir() if p.name.startswith(".run.old-")]
    assert len(backups) == 1 and (backups[0] / "best.pt").read_text() == "old"
    assert (backups[0] / "baseline" / "best.pt").read_text() == "old"
    monkeypatch.undo()
    # the next command into the folder puts the earlier run back; the cut-short run's files stand where it goes
    # back: they go aside (never away)
    with written_in_place(out, kind="train", force=False, resume=True):
        pass
    assert (out / "best.pt").read_text() == "old" and (out / "baseline" / "best.pt").read_text() == "old"
    asides = [p for p in tmp_path.iterdir() if p.name.startswith(".run.killed-")]
    assert len(asides) == 1 and (asides[0] / "best.pt").read_text() == "new"
    assert not backups[0].exists()
    check_output_folder(out, kind="train")   # the manifest lists the earlier run again


def test_a_force_run_killed_in_its_first_epoch_gives_the_earlier_run_back(tmp_path, capsys):
    """Killed after it wrote (and recorded) its first file but before its first checkpoint: the earlier run comes
    back, the killed run's file goes aside; every later command used to be refused over it."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    (out / "notes.txt").write_text("mine")
    _killed_force_run(out, checkpointed=False, written=True)
    assert (out / "best.pt").read_text() == "new"
    with written_in_place(out, kind="train", force=False, resume=True):
        pass
    assert "put back the earlier run" in capsys.readouterr().err
    assert (out / "best.pt").read_text() == "old" and (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.killed-")]
    check_output_folder(out, kind="train", force=True)


def test_a_folder_named_like_the_manifest_refuses_a_json_before_any_work(tmp_path):
    (tmp_path / MANIFEST).mkdir()
    with pytest.raises(UserError, match="is not edgevit's manifest"):
        check_output_file(tmp_path / "r.json", kind="bench")


_KILLED_FORCE_RUN = """
import os, signal, sys
from pathlib import Path
from contract.outputs import written_in_place
out, checkpoint = Path(sys.argv[1]), sys.argv[2]
with written_in_place(out, kind="train", force=True) as w:
    if checkpoint != "0":   # "written": a best.pt of its first epoch, killed before the run counts as checkpointed
        (out / "best.pt").write_text("new")
        w.record(out / "best.pt")
    if checkpoint == "1":
        w.checkpointed()
    os.kill(os.getpid(), signal.SIGKILL)   # an OOM kill: no handler, no rollback
"""


def _killed_force_run(out: Path, *, checkpointed: bool, written: bool = False) -> None:
    """A `--force` run into `out`, killed (SIGKILL) before or after its first checkpoint (`written`: before, with a
    best.pt written)."""
    mode = "1" if checkpointed else "written" if written else "0"
    proc = subprocess.run([sys.executable, "-c", _KILLED_FORCE_RUN, str(out), mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_a_killed_force_run_is_put_back_by_the_next_run(tmp_path, capsys):
    """SIGKILL (or an OOM kill) after a --force run moved the earlier run aside: nothing could restore it then.
    The next command into the folder puts it back, manifest and all, so --resume continues it and --force
    replaces it; a sibling that only looks like a backup is left alone, and so is a user's copy of the run or
    of the backup (`cp -a` takes the manifest along)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    before, recorded = snapshot(out), read_manifest(out)
    (tmp_path / ".run.old-notes").mkdir()          # a user's folders, not backups
    (tmp_path / ".run.old-abcdefgh").mkdir()
    (tmp_path / ".run.old-abcdefgh" / "best.pt").write_text("mine")
    shutil.copytree(out, tmp_path / ".run.old-20261130", symlinks=True)   # a user's dated copy of the run
    _killed_force_run(out, checkpointed=False)
    assert not (out / "best.pt").exists()
    backup = next(p for p in tmp_path.iterdir() if p.name.startswith(".run.old-") and (p / "best.pt").exists()
                  and p.name not in (".run.old-abcdefgh", ".run.old-20261130"))
    shutil.copytree(backup, tmp_path / ".run.old-copy1234", symlinks=True)    # and a copy of the backup
    copies = {name: snapshot(tmp_path / name) for name in (".run.old-20261130", ".run.old-copy1234")}
    with pytest.raises(UserError, match="already holds an earlier train"):
        with written_in_place(out, kind="train", force=False):
            pass
    assert "put back the earlier run" in capsys.readouterr().err
    assert read_manifest(out) == recorded, "the manifest's entries go back as they were"
    before.pop(MANIFEST)   # its bytes hold the time it was written (seconds): the entries are what count
    assert_unchanged(before, out, "the earlier run, put back")
    assert not backup.exists() and (tmp_path / ".run.old-notes").is_dir()
    assert (tmp_path / ".run.old-abcdefgh" / "best.pt").read_text() == "mine"
    for name, files in copies.items():
        assert_unchanged(files, tmp_path / name, f"the user's copy {name}")
    with written_in_place(out, kind="train", force=True) as w:   # and it is still ours to replace
        _run_files(out, "new", w)
    assert (out / "best.pt").read_text() == "new"
    for name, files in copies.items():
        assert_unchanged(files, tmp_path / name, f"the user's copy {name}")


def test_a_force_run_killed_after_its_first_checkpoint_is_the_one_kept(tmp_path, capsys):
    """After its first checkpoint a --force run is kept when interrupted: a SIGKILL there means the same, so the
    next --resume continues the new run instead of being refused over a backup that would overwrite it. The
    backup is named and left (a copy of it elsewhere looks the same: edgevit never removes one)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    _killed_force_run(out, checkpointed=True)
    backups = [p for p in tmp_path.iterdir() if p.name.startswith(".run.old-")]
    assert len(backups) == 1, "the kill left the backup"
    kept = snapshot(backups[0])
    with written_in_place(out, kind="train", force=False, resume=True):
        pass
    assert "reached its first checkpoint" in capsys.readouterr().err
    assert (out / "best.pt").read_text() == "new" and not (out / "baseline").exists()
    assert_unchanged(kept, backups[0], "the earlier run's backup")


def test_a_backup_whose_run_became_a_file_is_one_line(tmp_path):
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    _killed_force_run(out, checkpointed=False)
    shutil.rmtree(out)
    out.write_text("a file where the run was")
    with pytest.raises(UserError, match=r"is now a file where it goes back"):
        with written_in_place(out, kind="train", force=False, resume=True):
            pass


def test_a_long_input_name_is_not_an_output_name(tmp_path):
    """The length limit is for outputs (their siblings need room); an input may have any valid name."""
    from contract.outputs import resolve_out

    long = tmp_path / ("e" * 240)
    long.mkdir()
    assert resolve_out(long) == long.resolve()
    with pytest.raises(UserError, match="choose a shorter output name"):
        make_staging(long)


def test_a_legacy_manifest_does_not_own_a_copy_put_below_it(tmp_path):
    """Format 1 owned every file under its top-level names not newer than itself; a copy of another run (older
    times kept by cp -a) put there has a manifest of its own and stays the user's."""
    from contract.outputs import remove_outputs

    run = tmp_path / "run"
    (run / "baseline").mkdir(parents=True)
    (run / "best.pt").write_text("w")
    old = tmp_path / "old"
    old.mkdir()
    (old / "best.pt").write_text("older run")
    (old / MANIFEST).write_text(json.dumps({"kind": "train", "entries": ["best.pt"]}))
    os.utime(old / "best.pt", (1e9, 1e9))
    os.utime(old / MANIFEST, (1e9, 1e9))
    shutil.copytree(old, run / "baseline" / "old", symlinks=True)   # copytree keeps the times
    (run / MANIFEST).write_text(json.dumps({"kind": "train", "entries": ["best.pt", "baseline"]}))
    assert [Path(p).name for p in remove_outputs(run)] == ["best.pt"]
    assert (run / "baseline" / "old" / "best.pt").read_text() == "older run"


def test_make_clean_keeps_a_users_copy_of_a_run(tmp_path):
    """A copy of a run (`cp -a`) carries the run's manifest. make clean reads only the manifest of the folder it
    cleans: a copy the user put inside it is theirs, and a copy elsewhere is never looked at."""
    from contract.outputs import remove_outputs

    runs = tmp_path / "runs"
    with written_in_place(runs / "a", kind="train", force=False) as w:
        _run_files(runs / "a", "run", w)
    shutil.copytree(runs / "a", tmp_path / "copy", symlinks=True)
    shutil.move(tmp_path / "copy", runs / "a" / "my-safe-copy")
    shutil.move(runs / "a", runs / "renamed")         # a run renamed (or moved): still what it holds
    kept = snapshot(runs / "renamed" / "my-safe-copy")
    removed = remove_outputs(runs / "renamed")
    assert sorted(Path(p).relative_to(runs).as_posix() for p in removed) == ["renamed/baseline/best.pt",
                                                                             "renamed/best.pt"]
    assert_unchanged(kept, runs / "renamed" / "my-safe-copy", "the copy")
    assert remove_outputs(runs) == [], "a folder above the make targets' own has no manifest: nothing goes"


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(UserError):
        with written_in_place(out, kind="train", force=False):
            raise UserError("no such data set")
    assert not out.exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError):
        with written_in_place(tmp_path / "mine", kind="train", force=False):
            raise UserError("no such data set")
    assert (tmp_path / "mine").is_dir(), "a folder that was there before stays"


def test_a_lock_on_a_file_its_holder_has_removed_locks_nothing(tmp_path, monkeypatch):
    """The holder removes the lock file as it lets go: a process that opened the file just before and locks it
    just after holds a lock on nothing. folder_lock checks the file it locked is still the lock file."""
    import fcntl

    folder = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    real_flock, calls = fcntl.flock, []

    def flock(fd, op):   # the first try: the file is replaced between our open and our flock
        if not calls:
            lock.unlink()
            lock.write_text("")
        calls.append(op)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with folder_lock(folder, what="training run"):
        assert len(calls) == 2, "the lock on the stale file was dropped and the current file locked"
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                real_flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


@pytest.mark.parametrize("how", [KeyboardInterrupt, RuntimeError, OSError])
def test_written_in_place_keeps_a_new_run_interrupted_after_its_checkpoint(tmp_path, capsys, how):
    """From its first checkpoint a --force run is the one kept, whether it is interrupted or fails later (a
    divergence or a full disk at epoch N keeps its N-1 resumable epochs; rolling back then threw them away),
    and it says so."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    with pytest.raises(how):
        with written_in_place(out, kind="train", force=True) as w:
            _run_files(out, "new", w)
            w.checkpointed()
            raise how
    assert (out / "best.pt").read_text() == "new" and _beside(tmp_path) == ["run"]
    assert "continue it with --resume" in capsys.readouterr().err
    check_output_folder(out, kind="train")        # the manifest lists the new files


def test_make_clean_removes_only_what_make_targets_wrote(tmp_path):
    """Data loss 7: `make clean` was `rm -rf runs artifacts`."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(ROOT / "contract", tmp_path / "contract", ignore=shutil.ignore_patterns("__pycache__"))
    model = re.search(r"^MODEL\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)  # make's default
    run, art = f"runs/{model}-digits", f"artifacts/{model}-digits"
    made = {run: "train", art: "export",
            "runs/demo-ar-glasses": "simulate", "runs/digits_xs": "train", "artifacts/digits_xs": "export"}
    for folder, kind in made.items():
        publish(_stage(tmp_path / folder, {"best.pt": "w", "int8/model.tflite": "t"}), tmp_path / folder, kind=kind)
    (tmp_path / run / "notes.txt").write_text("mine")
    (tmp_path / art / "int8/why.md").write_text("mine")
    keep = {"runs/digits_xs", "artifacts/digits_xs"}          # the README's own CLI examples
    before = {f: snapshot(tmp_path / f) for f in keep}
    proc = subprocess.run(["make", "--no-print-directory", "clean", f"PYTHON={sys.executable}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for f in keep:
        assert_unchanged(before[f], tmp_path / f, f)
    assert sorted(snapshot(tmp_path / run)) == ["notes.txt"]
    assert sorted(snapshot(tmp_path / art)) == ["int8/why.md"]
    assert not (tmp_path / "runs/demo-ar-glasses").exists()


def test_search_records_its_files_and_refuses_to_rewrite_an_edited_one(tmp_path):
    from contract.outputs import record_outputs
    from edgevit_cli.search import MARKER, OUTPUT_KIND, _check_folder

    out = tmp_path / "search"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"kind": "edgevit-search"}))
    (out / "trials.csv").write_text("design,val_acc\n")
    _check_folder(out)                                   # a search folder from before manifests: as it is
    record_outputs(out, OUTPUT_KIND, out / MARKER, out / "trials.csv")
    _check_folder(out)
    (out / "trials.csv").write_text("design,val_acc,my column\n")
    with pytest.raises(UserError, match="trials.csv changed since"):
        _check_folder(out)


# --- the commands ----------------------------------------------------------------------------------------------

def _plant(folder: Path) -> dict[str, str]:
    """A user's file in `folder` and in every subfolder below it."""
    for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        (d / "users_notes.txt").write_text(f"notes about {d.name}\n")
    return {k: v for k, v in snapshot(folder).items() if k.endswith("users_notes.txt")}


def _twice(args: list[str], out: Path, planted: dict[str, str], *, ok: int = 0) -> None:
    """Without --force: refused in one line naming a planted file, nothing changed; with --force: runs,
    every planted file is still there, byte-identical."""
    before = snapshot(out)
    again = run_cli(*args)
    assert_user_error(again, "users_notes.txt", "--force")
    assert_unchanged(before, out, "refused run")
    forced = run_cli(*args, "--force")
    assert forced.returncode == ok, forced.stdout[-1500:] + forced.stderr[-1500:]
    assert_unchanged(planted, out, "run with --force")


def test_export_keeps_a_users_file_in_every_subfolder(tiny_run, tiny_export, tmp_path):
    out = tmp_path / "art"
    shutil.copytree(tiny_export, out)               # the first run (copied: the fixture is shared)
    planted = _plant(out)
    assert {"fp32/users_notes.txt", "int8/users_notes.txt", "users_notes.txt"} <= set(planted)
    _twice(["export", str(tiny_run / "best.pt"), "--out", str(out), "--calib-samples", "100", "--quiet"], out,
           planted)


def test_simulate_and_quant_report_keep_a_users_file(tiny_export, tmp_path):
    sim = tmp_path / "sim"
    args = ["simulate", "--model", str(tiny_export / "int8"), "--frames", "10", "--max-speed", "--out", str(sim)]
    assert run_cli(*args).returncode == 0
    _twice(args, sim, _plant(sim))
    qr = tmp_path / "qr"
    args = ["quant-report", str(tiny_export), "--images", "4", "--out", str(qr)]
    assert run_cli(*args).returncode == 0
    _twice(args, qr, _plant(qr))


@pytest.fixture(scope="module")
def few_images(tmp_path_factory):
    """An image folder small enough that a training takes seconds: 2 classes x 30 random 64x64 images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("few_images")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_train_keeps_a_users_file_in_the_run_and_its_baseline(few_images, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "edgevit_xxs", "--baseline", "edgevit_xxs", "--data", str(few_images), "--epochs", "1",
            "--batch-size", "16", "--no-progress", "--out", str(out)]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    planted = _plant(out)
    assert "baseline/users_notes.txt" in planted
    _twice(args, out, planted)
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(
        [f"{d}{n}" for d in ("", "baseline/") for n in ("best.pt", "last.pt", "log.csv", "metrics.json")])


def test_train_force_with_a_diverging_lr_leaves_the_old_run_byte_identical(tiny_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    (out / "users_notes.txt").write_text("mine")
    before = snapshot(out)
    proc = run_cli("train", "--force", "--model", "edgevit_xxs", "--epochs", "2", "--lr", "1e30", "--warmup-epochs",
                   "0", "--no-progress", "--out", str(out))
    assert_user_error(proc, "diverged")
    assert_unchanged(before, out, "diverged --force run")
    assert snapshot(out).keys() == before.keys() and _beside(tmp_path) == ["run"], "nothing added, nothing beside"


def test_a_symlinked_out_is_written_through_and_stays_a_link(small_export, tmp_path):
    """Data loss 6: a symlinked --out was replaced by a real folder (or, linked to an empty folder, the
    finished run failed with 'Not a directory')."""
    target, link = tmp_path / "target", tmp_path / "link"
    target.mkdir()
    link.symlink_to(target, target_is_directory=True)
    args = ["simulate", "--model", str(small_export / "fp32"), "--frames", "5", "--max-speed", "--no-video",
            "--out", str(link)]
    for _ in range(2):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert link.is_symlink() and (target / "report.json").is_file()
    assert _beside(tmp_path) == ["link", "target"]


def test_out_dot_works(tiny_export, tmp_path):
    """`--out .` was 'PosixPath('.') has an empty name'."""
    here = tmp_path / "here"
    here.mkdir()
    args = ["quant-report", str(tiny_export), "--images", "4", "--out", "."]
    for _ in range(2):
        proc = run_cli(*args, cwd=here)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in here.iterdir()) == sorted([MANIFEST, "quant_report.json", "quant_report.png"])


def test_a_run_locked_through_another_path_is_refused(tiny_run, tmp_path):
    """Data loss 5: two trainings into `rc3` and a symlink to it both ran."""
    run, link = tmp_path / "rc3", tmp_path / "rc3_link"
    shutil.copytree(tiny_run, run)
    link.symlink_to(run, target_is_directory=True)
    before = snapshot(run)
    with folder_lock(run, what="training run"):
        proc = run_cli("train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--out", str(link))
    assert proc.returncode == 2
    assert_user_error(proc, "a training run is writing")
    assert_unchanged(before, run, "locked run")


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A 3-class conv net exported to fp32 with a sample pack (seconds, no training)."""
    import torch
    from torch import nn

    from export.converter import convert

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("small_export") / "art"
    convert(model, torch.zeros(1, 3, 32, 32), out_dir=out, formats="fp32", verbose=False,
            sample_pack=(images, np.zeros(16, np.int64)))
    return out


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_twice_in_simulate_leaves_a_valid_partial_result(small_export, tmp_path, second):
    """Data loss 8: a second Ctrl-C shortly after the first (while the partial result is written) left no
    output folder at all. The first signal names the stop: a SIGTERM after the Ctrl-C changes neither the
    exit code nor the report's stop_reason."""
    out = tmp_path / "sim"
    # --realtime: on the virtual clock a 10 s run can end within the 1.5 s, and the Ctrl-C would miss the loop
    proc = start_cli("simulate", "--model", str(small_export / "fp32"), "--duration", "10", "--core", "host",
                     "--realtime", "--out", str(out))
    for line in proc.stdout:
        if "simulating" in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(second)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True and report["frames"]["processed"] > 0
    assert report["stop_reason"] == "interrupted"
    assert _beside(tmp_path) == ["sim"], "no staging folder or lock left behind"


def test_ctrl_c_while_simulate_writes_its_outputs_publishes_the_report(small_export, tmp_path, monkeypatch):
    """Data loss 8: a Ctrl-C during the plots or the video (after the loop) lost the whole run."""
    import device_sim.simulate as sim
    from device_sim.profiles import load_profile

    def interrupted(out, *a, **kw):
        (out / "demo.mp4").write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "_write_outputs", interrupted)
    profile = sim.apply_overrides(load_profile("ar-glasses"), core="host")
    out = tmp_path / "sim"
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(small_export / "fp32", profile, out=out, max_frames=8, max_speed=True, progress=False,
                     log=lambda *a: None)
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True and report["stop_reason"] == "interrupted"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "frames.csv", "report.json"]
    assert _beside(tmp_path) == ["sim"]


def test_a_users_file_named_like_the_lock_is_kept(tmp_path):
    (tmp_path / ".data.lock").write_text("precious")
    with folder_lock(tmp_path / "data", what="simulation"):
        pass
    assert (tmp_path / ".data.lock").read_text() == "precious"
    with folder_lock(tmp_path / "other", what="simulation"):
        assert (tmp_path / ".other.lock").is_file()
    assert not (tmp_path / ".other.lock").exists(), "the lock edgevit made goes"


def test_a_killed_force_run_is_put_back_before_resume_looks_for_last_pt(tmp_path):
    """`train --resume` after a killed `train --force`: last.pt is in the backup; it comes back first."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        (out / "last.pt").write_text("old")
        w.record(out / "last.pt")
    _killed_force_run(out, checkpointed=False)
    assert not (out / "last.pt").exists()
    proc = run_cli("train", "--resume", "--out", str(out), "--no-progress")
    assert "nothing to resume" not in proc.stderr and (out / "last.pt").read_text() == "old", proc.stderr


def test_a_restore_never_goes_through_a_link_or_onto_a_file(tmp_path):
    import contract.outputs as outputs

    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    elsewhere.mkdir()
    backup = tmp_path / ".run.old-abcd1234"
    (backup / "baseline").mkdir(parents=True)
    (backup / "baseline" / "best.pt").write_text("old")
    outputs.write_manifest(backup, {"baseline/best.pt": {"kind": "train"}}, backup_of=str(out))
    out.mkdir()
    (out / "baseline").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UserError, match="stands where it goes back"):
        outputs.restore_left_backup(out)
    assert not list(elsewhere.iterdir()) and (backup / "baseline" / "best.pt").is_file()
    (out / "baseline").unlink()
    (out / "baseline").write_text("a file where the folder goes")
    with pytest.raises(UserError, match="stands where it goes back"):
        outputs.restore_left_backup(out)


def test_a_lock_that_is_a_link_to_nothing_is_named(tmp_path):
    (tmp_path / ".run.lock").symlink_to(tmp_path / "nothing")
    with pytest.raises(UserError, match="symlink to nothing"):
        with folder_lock(tmp_path / "run", what="training run"):
            pass


def test_resume_under_a_file_or_into_nothing_is_one_line_and_leaves_no_folders(tmp_path):
    (tmp_path / "best.pt").write_text("a file")
    proc = run_cli("train", "--resume", "--out", str(tmp_path / "best.pt" / "x"), "--no-progress")
    assert_user_error(proc, "is a file")
    proc = run_cli("train", "--resume", "--out", str(tmp_path / "new" / "deep" / "run"), "--no-progress")
    assert_user_error(proc, "nothing to resume")
    assert not (tmp_path / "new").exists(), "folders made only for the lock go again"


def test_a_ctrl_c_while_publish_takes_its_checksums_leaves_no_staging(tmp_path, monkeypatch):
    """The checksums of a big output (a video) take a while: a Ctrl-C then waits for the swap, like one
    during it, instead of leaving the staging folder beside the output."""
    import contract.outputs as outputs

    out = tmp_path / "sim"
    staging = make_staging(out)
    (staging / "demo.mp4").write_text("video")
    (staging / "report.json").write_text("{}")
    real = outputs.file_facts

    def facts(path, kind):
        if path.name == "demo.mp4":
            os.kill(os.getpid(), signal.SIGINT)
        return real(path, kind)

    monkeypatch.setattr(outputs, "file_facts", facts)
    with pytest.raises(KeyboardInterrupt):
        publish(staging, out, kind="simulate")
    assert sorted(os.listdir(tmp_path)) == ["sim"], "no staging folder left"
    assert sorted(read_manifest(out)) == ["demo.mp4", "report.json"]


def test_a_symlink_where_an_output_folder_goes_is_named(tmp_path):
    out, elsewhere = tmp_path / "art", tmp_path / "elsewhere"
    elsewhere.mkdir()
    staging = make_staging(out)
    (staging / "int8").mkdir()
    (staging / "int8" / "model.tflite").write_text("new")
    publish(staging, out, kind="export")
    shutil.rmtree(out / "int8")
    (out / "int8").symlink_to(elsewhere, target_is_directory=True)
    staging = make_staging(out)
    (staging / "int8").mkdir()
    (staging / "int8" / "model.tflite").write_text("newer")
    with pytest.raises(UserError, match=r"int8 is a symlink where this export writes int8"):
        publish(staging, out, kind="export", force=True)
    assert not list(elsewhere.iterdir())


def test_a_folder_where_the_lock_goes_is_named(tmp_path):
    (tmp_path / ".run.lock").mkdir()
    with pytest.raises(UserError, match=r"\.run\.lock is a folder where edgevit keeps the lock"):
        with folder_lock(tmp_path / "run", what="training run"):
            pass


def test_a_signal_after_the_command_is_over_does_not_change_its_exit(tmp_path):
    """Once the command has returned (its outputs written), a Ctrl-C as the interpreter shuts down used to
    kill it by the signal (exit -2) instead of its own code."""
    code = ("import os, signal, sys\n"
            "from contract.errors import run_command\n"
            "code = run_command(lambda: 3, prog='x', exiting=True)\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)


def _published(out: Path, kind: str = "export") -> None:
    staging = make_staging(out)
    (staging / "int8").mkdir()
    (staging / "int8" / "model.tflite").write_text("model")
    (staging / "report.json").write_text("{}")
    publish(staging, out, kind=kind)


def test_an_output_moved_away_and_back_is_edgevits_again(tmp_path):
    """Moved to another disk and back (a new inode, the same path), an output is still what it holds."""
    from contract.outputs import remove_outputs

    out = tmp_path / "art"
    _published(out)
    shutil.copytree(out, tmp_path / "away", symlinks=True)
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "away", out, symlinks=True)
    assert sorted(Path(p).relative_to(out).as_posix() for p in remove_outputs(out)) == ["int8/model.tflite",
                                                                                      "report.json"]


def test_a_superseded_backup_is_never_put_back_by_itself(tmp_path, capsys):
    """The earlier run A in a superseded backup (its replacement B reached a checkpoint, then was killed), then a
    second --force killed before its checkpoint (B in a plain backup): B goes back, A is named and left, in
    whatever order the two are found; the same once the user removed the run (make clean)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "A", w)
    _killed_force_run(out, checkpointed=True)
    superseded = [p for p in tmp_path.iterdir() if p.name.startswith(".run.old-")]
    kept = snapshot(superseded[0])
    assert (out / "best.pt").read_text() == "new"   # run B's checkpoint
    _killed_force_run(out, checkpointed=False)
    with written_in_place(out, kind="train", force=False, resume=True):
        pass
    printed = capsys.readouterr().err
    assert "put back the earlier run" in printed and "reached its first checkpoint" in printed
    assert (out / "best.pt").read_text() == "new"
    assert_unchanged(kept, superseded[0], "the superseded backup")
    shutil.rmtree(out)
    with written_in_place(out, kind="train", force=False, resume=True):
        pass
    assert not (out / "best.pt").exists(), "the superseded run does not come back by itself"
    assert_unchanged(kept, superseded[0], "the superseded backup")


def test_a_killed_force_runs_backup_comes_back_in_a_copied_project(tmp_path, capsys):
    proj = tmp_path / "proj"
    with written_in_place(proj / "run", kind="train", force=False) as w:
        _run_files(proj / "run", "old", w)
    _killed_force_run(proj / "run", checkpointed=False)
    shutil.copytree(proj, tmp_path / "proj2", symlinks=True)   # the project copied to another disk
    with written_in_place(tmp_path / "proj2" / "run", kind="train", force=False, resume=True):
        pass
    assert "put back the earlier run" in capsys.readouterr().err
    assert (tmp_path / "proj2" / "run" / "best.pt").read_text() == "old"


def test_a_symlinked_output_folder_is_named_before_any_work(tmp_path):
    out, elsewhere = tmp_path / "art", tmp_path / "elsewhere"
    _published(out)
    elsewhere.mkdir()
    shutil.rmtree(out / "int8")
    (out / "int8").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UserError, match=r"int8 is a symlink where this export writes int8; edgevit never"):
        check_output_folder(out, kind="export", force=True, expect=("int8",))


def test_a_lock_whose_parent_another_locker_removed_is_taken(tmp_path, monkeypatch):
    """Two runs into new folders under one new parent: one may remove the (empty) parent it made between the
    other's mkdir and its lock file; the other makes it again."""
    real_open, calls = os.open, []

    def racing_open(path, flags, *args):
        if flags & os.O_CREAT and not calls:
            calls.append(path)
            os.rmdir(Path(path).parent)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", racing_open)
    with folder_lock(tmp_path / "shared" / "run", what="training run"):
        assert (tmp_path / "shared" / ".run.lock").is_file() and calls
    assert not (tmp_path / "shared").exists()


@pytest.mark.parametrize("manifest", [
    {"format": 2, "files": {"f.txt": {"kind": ["train"], "size": 4, "sha256": "x"}}},
    "[" * 100000,
], ids=["kind-a-list", "nested-too-deep"])
def test_clean_keeps_files_under_a_hand_edited_manifest(tmp_path, manifest):
    from contract.manifest import sha256_file
    from contract.outputs import remove_outputs

    run = tmp_path / "run"
    run.mkdir()
    (run / "f.txt").write_text("mine")
    if isinstance(manifest, dict):
        manifest["files"]["f.txt"]["sha256"] = sha256_file(run / "f.txt")
        manifest = json.dumps(manifest)
    (run / MANIFEST).write_text(manifest)
    assert remove_outputs(run) == [] and (run / "f.txt").read_text() == "mine"


def test_a_name_too_long_for_the_staging_beside_it_is_one_line(tmp_path):
    name = "r" * 240   # a valid name, but .NAME.partial-XXXXXXXX beside it is not
    proc = run_cli("train", "--model", "edgevit_xxs", "--epochs", "1", "--out", str(tmp_path / name), "--no-progress")
    assert_user_error(proc, "choose a shorter output name")
    assert not list(tmp_path.iterdir())


def test_a_json_name_too_long_for_its_temporary_file_is_refused_before_any_work(tmp_path):
    from contract.outputs import _MAX_FILE_NAME

    with pytest.raises(UserError, match="choose a shorter file name"):
        check_output_file(tmp_path / ("j" * (_MAX_FILE_NAME - 4) + ".json"), kind="bench")
    longest = check_output_file(tmp_path / ("j" * (_MAX_FILE_NAME - 5) + ".json"), kind="bench")
    publish_file(longest, "{}", kind="bench")   # its temporary name fits the file system's 255 bytes
    assert json.loads(longest.read_text()) == {}


def test_a_legacy_manifest_never_reads_a_fifo(tmp_path):
    from contract.outputs import remove_outputs

    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    os.mkfifo(run / "sub" / "pipe")
    (run / "sub" / "w.txt").write_text("w")
    (run / MANIFEST).write_text(json.dumps({"kind": "train", "entries": ["sub"]}))
    assert [Path(p).name for p in remove_outputs(run)] == ["w.txt"]
    assert (run / "sub" / "pipe").exists()


def test_a_fifo_where_a_json_or_the_manifest_goes_never_blocks(tmp_path):
    (tmp_path / "f").mkdir()
    publish_file(check_output_file(tmp_path / "f" / "bench.json", kind="bench"), "{}", kind="bench")
    (tmp_path / "f" / "bench.json").unlink()
    os.mkfifo(tmp_path / "f" / "bench.json")
    with pytest.raises(UserError, match="is not a regular file"):
        check_output_file(tmp_path / "f" / "bench.json", kind="bench", force=True)
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / MANIFEST)
    assert read_manifest(run) == {}


def test_resume_never_rewrites_a_file_the_user_changed(tmp_path):
    """--resume rewrites log.csv, best.pt, last.pt and metrics.json in place: one the user edited is named and the
    run refused (the refusal without --resume no longer sends the user to --resume over it)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    (out / "best.pt").write_text("old, with my note")
    before = snapshot(out)
    with pytest.raises(UserError, match=r"best.pt \(changed since edgevit wrote it\) is not the file edgevit wrote "
                                        r"there, and --resume rewrites it"):
        with written_in_place(out, kind="train", force=False, resume=True, expect=("best.pt",)):
            pytest.fail("the block must not run")
    with pytest.raises(UserError, match=r"best.pt changed since edgevit wrote it: move it out of the folder to "
                                        r"continue with --resume"):
        with written_in_place(out, kind="train", force=False, expect=("best.pt",)):
            pass
    assert_unchanged(before, out, "after the refusals")


def test_a_file_listed_just_before_its_rename_is_the_runs_either_way(tmp_path):
    """InPlace.pending lists the new file before atomic_write's rename and keeps the file it replaces as "was":
    killed between the two (the old file still there) or after (the new one), the file is the run's own."""
    from contract.files import atomic_write
    from contract.manifest import ownership

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "epoch 1", w)

    class Killed(BaseException):
        pass

    def killed_at_rename(tmp):
        hook(tmp)
        raise Killed   # as a SIGKILL right after the record, before os.replace

    with pytest.raises(Killed):
        with written_in_place(out, kind="train", force=False, resume=True) as w:
            hook = w.pending(out / "best.pt")
            atomic_write(out / "best.pt", lambda p: p.write_text("epoch 2"), before_replace=killed_at_rename)
    assert (out / "best.pt").read_text() == "epoch 1" and "best.pt" in ownership(out, "train").owned
    with written_in_place(out, kind="train", force=False, resume=True) as w:
        atomic_write(out / "best.pt", lambda p: p.write_text("epoch 2"), before_replace=w.pending(out / "best.pt"))
        assert "best.pt" in ownership(out, "train").owned   # renamed, not yet recorded: listed already
        w.record(out / "best.pt")
    assert "was" not in read_manifest(out)["best.pt"]


def test_a_killed_writes_temporary_file_is_edgevits(tmp_path):
    """A SIGKILL inside atomic_write leaves .NAME.edgevit-RRRRRRRRCCCCCCCC.tmp: of a file the run lists (or of the
    manifest) it is the run's own (never named as the user's; the next run into the folder, --force and make clean
    take it away). A name without edgevit's mark, whose last 8 characters are not the checksum of NAME and the
    random part (a user's .log.csv.edgevit-mynotes1.tmp was removed as a leftover), or of a file the run never
    wrote, is the user's."""
    from contract.files import _make_temp, temp_target
    from contract.manifest import ownership

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    ours = []
    for target in ("best.pt", "baseline/best.pt", ".edgevit-output.json"):
        fd, tmp = _make_temp(out / target)
        os.close(fd)
        ours.append(Path(tmp).relative_to(out).as_posix())
        assert temp_target(Path(tmp).name) == Path(target).name
    forged = Path(ours[0]).name[:-12] + "0000abcd.tmp"   # edgevit's random part, a wrong checksum
    mine = (".notes.txt.edgevit-" + Path(ours[0]).name[-20:], ".log.csv.edgevit-mynotes1.tmp", forged,
            ".best.pt.edgevit-mynotes1abcdef12.tmp", "..edgevit-output.json.edgevit-keepme12.tmp",
            ".best.pt.mynotes1.tmp", "..edgevit-output.json.userfile.tmp")
    for name in (*ours, *mine):
        (out / name).write_text("half")
    own = ownership(out, "train")
    assert set(ours) <= set(own.owned) and sorted(own.foreign) == sorted(mine)
    kept = snapshot(out)
    with written_in_place(out, kind="train", force=False, resume=True) as w:   # a resume removes leftovers, only
        assert not any((out / n).exists() for n in ours)
    assert {rel: kept[rel] for rel in mine} == {rel: snapshot(out)[rel] for rel in mine}
    for name in ours:
        (out / name).write_text("half")
    with written_in_place(out, kind="train", force=True) as w:   # a KeyError on the leftover before
        _run_files(out, "new", w)
    assert not any((out / n).exists() for n in ours)
    assert {rel: kept[rel] for rel in mine} == {rel: snapshot(out)[rel] for rel in mine}
    assert remove_outputs(out) and sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        Path(m).name for m in mine)


def test_resume_never_takes_over_a_file_it_did_not_write(tmp_path):
    """A metrics.json the user put into an unfinished run (never listed) is refused by --resume like an edited one
    (it was read as the finished run's results and recorded as edgevit's)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "epoch 1", w)
    (out / "metrics.json").write_text('{"model": {"note": "my own summary"}}')
    before = snapshot(out)
    with pytest.raises(UserError, match="metrics.json is not the file edgevit wrote there, and --resume rewrites it"):
        with written_in_place(out, kind="train", force=False, resume=True, expect=("best.pt", "metrics.json")):
            pytest.fail("the block must not run")
    assert_unchanged(before, out, "after the refusal")
    with written_in_place(out, kind="train", force=True, resume=True, expect=("metrics.json",)) as w:
        assert not w.owns(out / "metrics.json") and w.owns(out / "best.pt")   # not a finished run's results


def test_a_ctrl_c_while_the_earlier_run_moves_aside_rolls_it_back(tmp_path, monkeypatch):
    """A Ctrl-C held while --force moves the earlier run into its backup is delivered once the move is done:
    inside the rollback's reach (it was delivered before it, leaving the run only in the hidden backup)."""
    import contract.outputs as outputs

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    real = outputs._move_all

    def interrupted_move(names, src, dst, done):
        real(names, src, dst, done)
        if dst.name.startswith(".run.old-"):
            signal.raise_signal(signal.SIGINT)   # held: arrives while the backup is being made

    monkeypatch.setattr(outputs, "_move_all", interrupted_move)
    with pytest.raises(KeyboardInterrupt):
        with written_in_place(out, kind="train", force=True):
            pytest.fail("the block must not run")
    assert_unchanged(before, tmp_path, "after a Ctrl-C while the earlier run moved aside")


def test_a_kill_while_the_next_command_puts_the_run_back_keeps_it_owned(tmp_path, capsys):
    """restore_left_backup lists the earlier run's files in the folder's manifest before it moves them: killed
    after some went back, the next command finishes the move and the run is edgevit's (--force replaces it,
    make clean removes it); before, a backup left holding only its manifest was dropped with the only record."""
    from contract.manifest import ownership

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    _killed_force_run(out, checkpointed=False)
    backup = next(p for p in tmp_path.iterdir() if p.name.startswith(".run.old-"))
    shutil.rmtree(out)
    out.mkdir()
    (out / "baseline").mkdir()
    os.rename(backup / "baseline" / "best.pt", out / "baseline" / "best.pt")   # killed after one of two went back
    restore_left_backup(out)
    assert ownership(out, "train").owned == ["baseline/best.pt", "best.pt"] and not backup.exists()
    # and killed after all went back, before the manifest was written: the backup's manifest still names them
    _killed_force_run(out, checkpointed=False)
    backup = next(p for p in tmp_path.iterdir() if p.name.startswith(".run.old-"))
    shutil.rmtree(out)
    out.mkdir()
    for rel in ("best.pt", "baseline/best.pt"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.rename(backup / rel, out / rel)
    restore_left_backup(out)
    assert ownership(out, "train").owned == ["baseline/best.pt", "best.pt"] and not backup.exists()


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("what", ["linked-folder", "linked-file", "dangling-link", "folder"])
def test_an_in_place_run_never_writes_through_a_link_or_over_a_folder(tmp_path, what, force):
    """A symlinked baseline/ (or a link, or a folder, where metrics.json goes): --resume wrote through the link into
    the user's folder, recorded its files as edgevit's and clean deleted them; a link outside the run was a
    traceback; a folder failed after the whole training. Refused before any work, with or without --force."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("my notes")
    if what == "linked-folder":
        shutil.rmtree(out / "baseline")
        (out / "baseline").symlink_to(mine)
    elif what == "linked-file":
        (out / "metrics.json").symlink_to(mine / "metrics.json")
    elif what == "dangling-link":
        (out / "metrics.json").symlink_to(tmp_path / "nowhere.json")
    else:
        (out / "metrics.json").mkdir()
    rel = "baseline/metrics.json" if what == "linked-folder" else "metrics.json"
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=f"where this train writes {rel}"):
        with written_in_place(out, kind="train", force=force, resume=True, expect=("metrics.json",
                                                                                    "baseline/metrics.json")):
            pytest.fail("the block must not run")
    assert_unchanged(before, tmp_path, "after the refusal")


def test_a_users_file_where_the_earlier_run_goes_back_is_never_moved(tmp_path):
    """After a killed --force run, a file the user put where the earlier run's file goes back is theirs: the
    restore refuses, naming it (it was moved into .run.killed-* as the killed run's)."""
    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    _killed_force_run(out, checkpointed=False)
    (out / "best.pt").write_text("mine, put here after the kill")
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=r"best.pt \(not written by that run\) stands where it goes back"):
        restore_left_backup(out)
    assert_unchanged(before, tmp_path, "after the refusal")


def test_a_legacy_manifest_does_not_own_a_file_moved_in_later(tmp_path):
    """Format 1 owns files not newer than the manifest; a file moved in keeps its old mtime, not its ctime."""
    from contract.manifest import ownership

    run = tmp_path / "run"
    (run / "baseline").mkdir(parents=True)
    (run / "baseline" / "best.pt").write_text("w")
    (run / MANIFEST).write_text(json.dumps({"kind": "train", "entries": ["baseline"]}))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    old = time.time() - 365 * 86400
    os.utime(notes, (old, old))
    time.sleep(2.5)   # past the legacy slack: the move comes later than the manifest
    os.rename(notes, run / "baseline" / "notes.txt")
    assert ownership(run, "train").owned == ["baseline/best.pt"]


_KILLED_ROLLBACK = """
import os, sys
from pathlib import Path
import contract.outputs as o
out = Path(sys.argv[1])
with o.written_in_place(out, kind="train", force=False) as w:
    (out / "log.csv").write_text("old")
    w.record(out / "log.csv")
with o.written_in_place(out, kind="train", force=True) as w:
    (out / "log.csv").write_text("new")
    w.record(out / "log.csv")
    o.file_facts = lambda *a, **k: os._exit(137)   # SIGKILL once the rollback's manifest is written
    raise RuntimeError("diverged before its first checkpoint")
"""


def test_a_rollback_killed_midway_is_finished_by_the_next_command(tmp_path, capsys):
    """The rollback lists both runs' files first: killed before it removed the new run's files, the next command
    knows them as the killed run's (moved aside, never refused as the user's) and puts the earlier run back."""
    from contract.manifest import ownership

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _KILLED_ROLLBACK, str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    assert (out / "log.csv").read_text() == "new"
    restore_left_backup(out)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(".run.killed-")]
    assert (out / "log.csv").read_text() == "old" and (aside[0] / "log.csv").read_text() == "new"
    assert ownership(out, "train").owned == ["log.csv"] and "put back the earlier run" in capsys.readouterr().err


_KILLER = """
import os, shutil, signal, sys
from pathlib import Path
import contract.outputs as o
out, at, what = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
calls = [0]
def killing(real):
    def call(*a, **k):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)   # power loss, an OOM kill: nothing runs after it
        return real(*a, **k)
    return call
if what == "publish":
    staging = o.make_staging(out)
    for rel, text in NEW.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text)
for name in ("replace", "unlink", "rmdir", "rename"):
    setattr(os, name, killing(getattr(os, name)))
shutil.rmtree = killing(shutil.rmtree)
if what == "publish":
    o.publish(staging, out, kind="export", force=True)
else:   # what the next command into the folder does first
    o.check_output_folder(out, kind="export", force=True)
print(calls[0])
"""
_OLD = {"int8/model.tflite": "old model", "report.json": "old report", "fp16/model.tflite": "old fp16"}
_NEW = {"int8/model.tflite": "new model", "report.json": "new report",   # and paths the earlier export had not
        "fp32/model.json": "new card", "samples.npz": "new samples"}


def _killed(out: Path, at: int, what: str) -> subprocess.CompletedProcess:
    code = _KILLER.replace("NEW.items()", f"{_NEW!r}.items()")
    return subprocess.run([sys.executable, "-c", code, str(out), str(at), what], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def _earlier_export_with_user_files(tmp_path) -> tuple[Path, dict]:
    out = tmp_path / "art"
    staging = make_staging(out)
    for rel, text in _OLD.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text)
    publish(staging, out, kind="export")
    (out / "notes.txt").write_text("mine")
    (out / "int8" / "mine.txt").write_text("mine too")
    return out, {rel: h for rel, h in snapshot(out).items() if "mine" in (out / rel).read_text()}


def _swaps_killed_at_each_call(tmp_path: Path):
    """An earlier export with the user's files in it, then a new export's swap killed (SIGKILL) at its 1st, 2nd, ...
    rename, unlink, rmdir or rmtree, each in a case folder of its own: yields (at, case folder, out, user files)
    until the swap runs whole."""
    for at in range(1, 100):
        case = tmp_path / f"k{at}"
        case.mkdir()
        out, users = _earlier_export_with_user_files(case)
        proc = _killed(out, at, "publish")
        if proc.returncode == 0:
            return
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        yield at, case, out, users


def _whole(out: Path, users: dict, what: str) -> str:
    """The export in `out` is the earlier one or the new one, whole, listed as exactly what is there; the user's
    files are untouched; nothing is left beside the folder. Returns which."""
    from contract.manifest import ownership

    assert_unchanged(users, out, what)
    own = ownership(out, "export")
    assert sorted(own.foreign) == ["int8/mine.txt", "notes.txt"], (what, own.foreign)
    files = {rel: (out / rel).read_text() for rel in own.owned}
    assert files in (_OLD, _NEW), (what, files)
    listed = {rel for rel, f in read_manifest(out).items() if f.get("kind") == "export"}
    assert listed == set(files), (what, listed, set(files))
    beside = [p.name for p in out.parent.iterdir() if p.name != "art"]
    # a lock file a killed command held is reused and removed by the next command that locks the folder
    assert beside in ([], [".art.lock"]), f"left beside, {what}: {beside}"
    return "old" if files == _OLD else "new"


def test_an_export_killed_while_it_swaps_its_results_in_is_undone_or_done(tmp_path):
    """SIGKILL at every rename, unlink, rmdir and rmtree of publish's swap: the next command into the folder finds
    the earlier export whole or the new one whole, never a mix (new files at paths the earlier export did not have
    stayed), listed as exactly what is there, the user's files untouched, nothing left beside the folder (an
    unlisted .old- backup, the staging folder), and writes again without a refusal (it named edgevit's own new file
    as 'changed since edgevit wrote it')."""
    seen, last = set(), 0
    for last, _, out, users in _swaps_killed_at_each_call(tmp_path):
        check_output_folder(out, kind="export", force=True)
        seen.add(_whole(out, users, f"killed at call {last}"))
    assert seen == {"old", "new"} and last >= 10, (seen, last)


@pytest.mark.parametrize("first", [6, 9])
def test_a_recovery_killed_midway_is_finished_by_the_next_command(tmp_path, first):
    """Killed again while it puts the earlier export back (a second power loss): the recovery wrote the folder's
    manifest without the swap's mark first, and the next command read that as 'the swap finished' and deleted the
    backup, the earlier export's only copy. Every point of the recovery, then the next command: the earlier export
    whole."""
    at = 1
    while True:
        case = tmp_path / f"r{at}"
        case.mkdir()
        out, users = _earlier_export_with_user_files(case)
        assert _killed(out, first, "publish").returncode == -signal.SIGKILL
        proc = _killed(out, at, "recover")
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        check_output_folder(out, kind="export", force=True)
        assert _whole(out, users, f"recovery killed at call {at}") == "old"
        at += 1
    assert at > 3


def test_what_happens_to_the_folder_after_a_killed_swap_never_loses_the_earlier_export(tmp_path):
    """A bench --json into the folder (its manifest write dropped the swap's mark), or the folder renamed, before
    the next command: the backup was taken for a finished swap's and deleted."""
    out, users = _earlier_export_with_user_files(tmp_path / "a")
    assert _killed(out, 6, "publish").returncode == -signal.SIGKILL
    publish_file(check_output_file(out / "bench.json", kind="bench"), "{}", kind="bench")
    check_output_folder(out, kind="export", force=True)
    (out / "bench.json").unlink()
    assert _whole(out, users, "after a bench --json") == "old"
    out, users = _earlier_export_with_user_files(tmp_path / "b")
    assert _killed(out, 6, "publish").returncode == -signal.SIGKILL
    moved = snapshot(out)
    out.rename(tmp_path / "b" / "renamed")
    check_output_folder(out, kind="export", force=True)
    assert {rel: (out / rel).read_text() for rel in _OLD} == _OLD   # the earlier export, back where it was
    assert snapshot(tmp_path / "b" / "renamed") == moved            # the renamed folder as the user left it


_KILLED_AT_FIRST_CHECKPOINT = """
import os, runpy, signal, sys
import contract.outputs as o
o.InPlace.checkpointed = lambda self: os.kill(os.getpid(), signal.SIGKILL)   # last.pt in place, not yet kept
sys.argv = ["edgevit", *sys.argv[1:]]
runpy.run_module("edgevit_cli", run_name="__main__")
"""


def test_resume_after_a_force_run_killed_at_its_first_checkpoint_continues_the_earlier_run(tiny_run, tmp_path):
    """Killed between its first last.pt and the moment that run is kept: --resume read the killed run's last.pt for
    the options, then put the earlier run back and trained it on with them (the finished earlier run rewritten with
    the killed run's learning rate). The earlier run goes back first; its options are the ones resumed."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT_FIRST_CHECKPOINT, "train", "--force", "--model",
                           "edgevit_xxs", "--epochs", "2", "--lr", "0.01", "--out", str(run), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(run) != before   # the killed run's last.pt stands in the folder
    proc = run_cli("train", "--resume", "--out", str(run), "--no-progress", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert "put back the earlier run" in proc.stderr
    from contract.manifest import ownership

    assert_unchanged({rel: h for rel, h in before.items() if rel != MANIFEST}, run, "the earlier, finished run")
    assert sorted(ownership(run, "train").owned) == sorted(rel for rel in before if rel != MANIFEST)
    killed = [p for p in tmp_path.iterdir() if p.name.startswith(".run.killed-")]
    assert len(killed) == 1 and (killed[0] / "last.pt").is_file()   # the killed run's epoch, set aside


def test_a_json_into_folders_still_to_be_made_is_written(tmp_path):
    """check_output_file allows a --json whose folders do not exist yet; the folder's turn opened the folder
    before atomic_write made it, and a finished bench ended in 'No such file or directory' (exit 2)."""
    path = check_output_file(tmp_path / "results" / "new" / "bench.json", kind="bench")
    publish_file(path, "{}", kind="bench")
    assert json.loads(path.read_text()) == {} and read_manifest(path.parent)["bench.json"]["kind"] == "bench"


def test_a_command_reading_a_half_replaced_run_puts_the_earlier_run_back_first(tmp_path):
    """export read the best.pt a killed `train --force` had written before its first checkpoint and exited 0; the
    next training then put the earlier run back, and the export named a checkpoint that no longer held its model.
    A command's inputs are recovered before they are read (the folder they lie in, at any depth)."""
    from edgevit_cli.main import main

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        _run_files(out, "old", w)
    _killed_force_run(out, checkpointed=False, written=True)
    assert (out / "best.pt").read_text() == "new"   # the killed run's, about to be discarded
    main(["export", str(out / "best.pt"), "--out", str(tmp_path / "art")], exiting=False)
    assert (out / "best.pt").read_text() == "old" and (out / "baseline" / "best.pt").read_text() == "old"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.old-")]


def test_a_benchmark_of_a_half_swapped_export_reads_one_whole_export(tmp_path):
    """`bench art/int8` after an export killed mid-swap read a mix of the earlier export's and the new one's
    files (and told the user to re-run export). The export is put back whole before the model is read."""
    from contract.manifest import ownership
    from edgevit_cli.main import main

    recovered = 0
    for at, case, out, users in _swaps_killed_at_each_call(tmp_path):
        pending = any(p.name.startswith(".art.old-") for p in case.iterdir())
        main(["bench", str(out / "int8"), "--runs", "1"], exiting=False)   # the files are no model: refused
        own = ownership(out, "export")
        assert {rel: (out / rel).read_text() for rel in own.owned} in (_OLD, _NEW), f"killed at call {at}"
        assert_unchanged(users, out, f"killed at call {at}")
        recovered += pending and not any(p.name.startswith(".art.old-") for p in case.iterdir())
    assert recovered >= 3, recovered


def test_a_json_into_a_subfolder_of_a_half_swapped_export_puts_the_export_back_first(tmp_path):
    """`bench --json art/fp32/b.json` recovered only art/fp32 and wrote into a folder holding a mix of the earlier
    and the new export's files; the refusal that followed named edgevit's own fp32/.edgevit-output.json first."""
    from contract.manifest import Ownership, ownership

    pending = 0
    for at, case, out, _ in _swaps_killed_at_each_call(tmp_path):
        if not any(p.name.startswith(".art.old-") for p in case.iterdir()):
            continue
        pending += 1
        check_output_file(out / "int8" / "b.json", kind="bench")
        own = ownership(out, "export")
        assert {rel: (out / rel).read_text() for rel in own.owned} in (_OLD, _NEW), f"killed at call {at}"
        assert not any(p.name.startswith(".art.old-") for p in case.iterdir()), f"killed at call {at}"
    assert pending >= 3, pending
    own = Ownership(kind="export", manifest={}, raw=b"")
    assert own.describe(["fp32/.edgevit-output.json", "fp32/b.json"]) == "fp32/b.json, fp32/.edgevit-output.json"


_CTRL_C_DURING_FIRST_CHECKPOINT = """
import os, runpy, signal, sys
import edgevit.train.engine as e
real = e.save_checkpoint
def save(path, *a, **k):
    if path.name == "last.pt":
        os.kill(os.getpid(), signal.SIGINT)   # arrives while the epoch's files are written (held until they are)
    return real(path, *a, **k)
e.save_checkpoint = save
sys.argv = ["edgevit", *sys.argv[1:]]
runpy.run_module("edgevit_cli", run_name="__main__")
"""


def test_a_ctrl_c_while_the_first_checkpoint_is_written_gives_the_earlier_run_back(tiny_run, tmp_path):
    """A Ctrl-C that arrived while a --force run wrote its first checkpoint was held until the files were whole,
    and the run counted as checkpointed inside the same hold: the new run was kept and the earlier one deleted (a
    SIGKILL at the same moment put it back). Interrupted before its first checkpoint was whole, the earlier run
    comes back."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_DURING_FIRST_CHECKPOINT, "train", "--force", "--model",
                           "edgevit_xxs", "--epochs", "2", "--out", str(run), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert "is gone" not in proc.stderr
    assert_unchanged(before, run, "the earlier run")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.")], list(tmp_path.iterdir())


def test_stage_models_and_sources_in_a_half_swapped_export_are_put_back_before_they_are_read(tmp_path):
    """A pipeline stage's model and a --source path are inputs too: simulate measured the killed swap's int8 file
    (its report said fp16), and a video in a half-swapped simulation folder 'did not exist'."""
    from contract.manifest import ownership
    from device_sim.pipelines import load_pipeline
    from device_sim.sources.base import open_source
    from device_sim.stages import load_stage_models

    pending = 0
    for at, case, out, users in _swaps_killed_at_each_call(tmp_path):
        if not any(p.name.startswith(".art.old-") for p in case.iterdir()):
            continue
        pending += 1
        if pending % 2:
            (case / "p.toml").write_text(f'[[stage]]\nname = "x"\nmodel = "{out / "int8"}"\ntask = "raw"\n')
            with pytest.raises(UserError):   # the files are no model
                load_stage_models(load_pipeline(case / "p.toml"))
        else:
            with pytest.raises(UserError):   # report.json is no video
                open_source(f"video:{out / 'report.json'}", width=64, height=64, fps=30, samples=case, labels=[])
        own = ownership(out, "export")
        assert {rel: (out / rel).read_text() for rel in own.owned} in (_OLD, _NEW), f"killed at call {at}"
        assert not any(p.name.startswith(".art.old-") for p in case.iterdir()), f"killed at call {at}"
        assert_unchanged(users, out, f"killed at call {at}")
    assert pending >= 4, pending
