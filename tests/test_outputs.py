"""contract.outputs: an output folder is replaced only when it holds nothing but an earlier output of
the same command; anything else needs --force, and even then only that output's own entries go."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

from contract.errors import UserError
from contract.outputs import (
    MANIFEST,
    check_output_file,
    check_output_folder,
    folder_lock,
    make_staging,
    publish,
    publish_file,
)


def _stage(out, files: dict[str, str]):
    staging = make_staging(out)
    for name, text in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text)
    return staging


def test_first_write_and_whole_replacement(tmp_path):
    out = tmp_path / "o"
    publish(_stage(out, {"a.txt": "1", "int8/m": "x"}), out, kind="export")
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == ["a.txt", "int8/m"]
    check_output_folder(out, kind="export")                       # an earlier export: fine
    publish(_stage(out, {"a.txt": "2"}), out, kind="export")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt"] and (out / "a.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["o"], "no staging or backup left beside it"


def test_foreign_files_need_force_and_survive_it(tmp_path):
    out = tmp_path / "o"
    publish(_stage(out, {"a.txt": "1", "old_only.txt": "x"}), out, kind="export")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="notes.txt"):
        check_output_folder(out, kind="export")
    with pytest.raises(UserError, match="--force"):
        check_output_folder(out, kind="simulate")                 # another command's output is foreign too
    check_output_folder(out, kind="export", force=True)
    publish(_stage(out, {"a.txt": "2"}), out, kind="export", force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.txt").read_text() == "2"
    assert not (out / "old_only.txt").exists(), "the earlier export's own files are replaced whole"


def test_a_folder_without_manifest_is_foreign(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "main.py").write_text("print('hi')")
    with pytest.raises(UserError, match="main.py"):
        check_output_folder(tmp_path / "proj", kind="export")
    with pytest.raises(UserError, match="is a file"):
        check_output_folder(tmp_path / "proj" / "main.py", kind="export")


def test_protected_inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"weights")
    with pytest.raises(UserError, match="best.pt, the input"):
        check_output_folder(run, kind="export", protect=(run / "best.pt",))


def test_lock_refuses_a_second_writer(tmp_path):
    with folder_lock(tmp_path / "o", what="export"):
        with pytest.raises(UserError, match="an export is writing"):
            with folder_lock(tmp_path / "o", what="export"):
                pass
    with folder_lock(tmp_path / "o", what="export"):   # released afterwards
        pass
    assert not list(tmp_path.iterdir())


def test_export_force_replaces_only_the_earlier_export(tmp_path):
    from export.converter import convert

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    out = tmp_path / "art"
    calib = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    convert(model, torch.zeros(1, 3, 32, 32), out_dir=out, formats="onnx,fp32", verbose=False)
    (out / "notes.md").write_text("why this export")
    with pytest.raises(UserError, match="notes.md"):
        convert(model, torch.zeros(1, 3, 32, 32), out_dir=out, formats="int8", calibration=calib, verbose=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "export_report.json", "export_report.md",
                                                            "fp32", "model.onnx", "notes.md"])
    convert(model, torch.zeros(1, 3, 32, 32), out_dir=out, formats="int8", calibration=calib, verbose=False,
            force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "export_report.json", "export_report.md",
                                                            "int8", "notes.md"])
    assert (out / "notes.md").read_text() == "why this export"


def test_train_force_never_touches_a_run_in_progress(tmp_path):
    """The lock is taken before --force removes anything: a second run finds the folder locked and the
    first run's files stay."""
    from edgevit.train.config import TrainConfig
    from edgevit.train.engine import train

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"in progress")
    with folder_lock(run, what="training run"):
        with pytest.raises(UserError, match="a training run is writing"):
            train(TrainConfig(out=str(run), model="edgevit_xxs", epochs=1), force=True)
    assert (run / "best.pt").read_bytes() == b"in progress"


def test_a_busy_folder_names_the_command_that_holds_it(tmp_path):
    """A simulation into a folder an export is writing said 'another simulation is writing' (its own name)."""
    out = tmp_path / "art"
    with folder_lock(out, what="export"):
        with pytest.raises(UserError, match="an export is writing .*art right now; wait for it to finish"):
            with folder_lock(out, what="simulation"):
                pytest.fail("the lock is held")


def test_a_writer_may_record_files_in_its_own_turn(tmp_path):
    """writers_in_turn is re-entrant in a process: a search worker's turn records its files (record_outputs takes
    the turn too, so a bench --json beside a training loses no manifest entry); another process waits."""
    import threading

    from contract.manifest import read_manifest
    from contract.outputs import record_outputs, writers_in_turn

    (tmp_path / "a.txt").write_text("a")
    with writers_in_turn(tmp_path):
        record_outputs(tmp_path, "search", tmp_path / "a.txt")   # no deadlock
    assert read_manifest(tmp_path)["a.txt"]["kind"] == "search"
    code = (f"from contract.outputs import writers_in_turn\nwith writers_in_turn({str(tmp_path)!r}):\n"
            "    print('in', flush=True)\n")
    with writers_in_turn(tmp_path):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        waited = threading.Timer(1.0, lambda: None)
        waited.start()
        waited.join()
        assert proc.poll() is None   # the other process waits for this turn
    assert proc.communicate(timeout=60)[0] == "in\n"


_HOLDS_THE_FOLDER = """
import sys, time
from pathlib import Path
from contract.outputs import folder_lock
with folder_lock(Path(sys.argv[1]), what="simulation"):
    print("locked", flush=True)
    time.sleep(2)
    Path(sys.argv[2]).write_text("done")   # the last thing before it lets go
"""


def test_a_json_waits_for_the_command_writing_its_folder(tmp_path, capsys):
    """A bench --json written into a folder a simulation was writing made the simulation's publish refuse the
    folder (a file it did not write) and throw its finished results away: the --json waits until it is done."""
    out = tmp_path / "sim"
    out.mkdir()
    path = check_output_file(out / "bench.json", kind="bench")
    done = tmp_path / "holder-done"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDS_THE_FOLDER, str(out), str(done)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    publish_file(path, "{}", kind="bench")
    assert done.is_file()   # written after the holder let go
    holder.wait(timeout=60)
    assert f"waiting for the simulation writing {out.resolve()} to finish" in capsys.readouterr().err   # not silent


_STAGES_THE_FOLDER = """
import sys, time
from pathlib import Path
from contract.outputs import folder_lock, make_staging
with folder_lock(Path(sys.argv[1]), what="simulation"):
    print(make_staging(Path(sys.argv[1])), flush=True)   # its results, still being written beside the folder
    time.sleep(2)
    Path(sys.argv[2]).write_text("done")
"""


def test_a_json_waits_even_while_the_writer_stages_beside_the_folder(tmp_path):
    """With the simulation's staging folder beside its --out, a --json into that folder took the staging folder for
    one a killed command left, tried to clear it under the folder's lock and was refused ('a simulation is writing
    ...'): whether it waited depended on timing. A live writer's staging folder is its own: the --json waits."""
    out = tmp_path / "sim"
    out.mkdir()
    done = tmp_path / "holder-done"
    holder = subprocess.Popen([sys.executable, "-c", _STAGES_THE_FOLDER, str(out), str(done)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    staging = Path(holder.stdout.readline().strip())
    assert staging.is_dir() and staging.parent == tmp_path
    path = check_output_file(out / "bench.json", kind="bench")   # refused before
    assert staging.is_dir()                                       # left to its writer
    publish_file(path, "{}", kind="bench")
    assert done.is_file()
    holder.wait(timeout=60)


def test_make_clean_refuses_a_folder_a_command_is_writing(tmp_path, capsys):
    """`python -m contract.outputs clean` removed a training's files while it was still writing them (it then made
    the folder again and finished, its manifest lost). A folder whose lock a command holds is refused."""
    from contract.outputs import _main, folder_lock, written_in_place

    run = tmp_path / "run"
    with written_in_place(run, kind="train", force=False) as w:
        (run / "best.pt").write_text("weights")
        w.record(run / "best.pt")
    with folder_lock(run, what="training run"):
        assert _main(["clean", str(run)]) == 2
    assert "a training run is writing" in capsys.readouterr().out and (run / "best.pt").read_text() == "weights"
    assert _main(["clean", str(run)]) == 0 and not run.exists()


def test_a_killed_jsons_temporary_file_goes_at_the_next_command(tmp_path):
    """A --json killed between its temporary write and the rename left .b.json.edgevit-*.tmp: not listed in the
    manifest yet, so it stayed for good, and the next simulate into the folder refused it as a file it did not
    write. By its marked name it is a killed write's: the next command into the folder removes it."""
    from contract.files import TEMP_MARK, marked_name

    out = tmp_path / "sim"
    path = check_output_file(out / "a.json", kind="bench")
    publish_file(path, "{}", kind="bench")
    temp = out / (marked_name(f".b.json{TEMP_MARK}") + ".tmp")
    temp.write_text("half a json")
    mine = out / ".b.json.edgevit-notes.tmp"   # a user's file of a similar name: not marked, kept
    mine.write_text("mine")
    check_output_folder(out, kind="bench", force=True)
    assert not temp.exists() and mine.read_text() == "mine" and (out / "a.json").is_file()


_REPLACES_THE_RUN = """
import sys, time
from pathlib import Path
from contract.outputs import folder_lock, written_in_place
out = Path(sys.argv[1])
with folder_lock(out, what="training run"):                     # as edgevit.train.engine.train holds it
    with written_in_place(out, kind="train", force=True) as w:   # the earlier run moved aside, nothing kept yet
        print("replacing", flush=True)
        time.sleep(3)
        raise SystemExit(1)                                      # fails: the earlier run goes back
"""


def test_reading_a_run_a_live_force_run_is_replacing_says_so(tmp_path):
    """`export run/best.pt` while `train --force --out run` ran before its first checkpoint said 'does not exist
    (train one with edgevit train)': the file was in the moved-aside earlier run. It says who is replacing the
    folder; once that command is done, the earlier run is back and readable."""
    from contract.outputs import recover_input, written_in_place

    out = tmp_path / "run"
    with written_in_place(out, kind="train", force=False) as w:
        (out / "best.pt").write_text("earlier")
        w.record(out / "best.pt")
    proc = subprocess.Popen([sys.executable, "-c", _REPLACES_THE_RUN, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "replacing\n"
    with pytest.raises(UserError, match=r"best.pt cannot be read now: a training run is writing .* \(it is "
                                        r"replacing that folder"):
        recover_input(out / "best.pt", what="export")
    proc.wait(timeout=60)
    recover_input(out / "best.pt", what="export")
    assert (out / "best.pt").read_text() == "earlier"
