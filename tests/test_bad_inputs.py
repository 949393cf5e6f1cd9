"""A hostile user's matrix: every row is a mistake a user can make on the command line (or a machine
without an optional library, a full disk, a FIFO among the images). Each must end with its exit code
and ONE line on stderr naming the problem (no traceback), or, where the rest can be done (exit 0),
with a one-line note of what was skipped; and must leave every file that existed before
byte-identical. A bug is the other way round: its traceback and exit 1, never the one line."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, assert_unchanged, assert_user_error, run_cli, snapshot

from contract.errors import BUG_NOTE, EXIT_BUG, EXIT_USAGE

USER = 2   # EXIT_USAGE


@pytest.fixture(scope="module")
def ws(tiny_run, tiny_export, tmp_path_factory):
    """A workspace: a copy of a finished run and of its export, a folder holding a user's notes, an empty
    image folder, a truncated and a foreign checkpoint, a mismatched checkpoint, bad model cards."""
    root = tmp_path_factory.mktemp("ws")
    shutil.copytree(tiny_run, root / "run")
    shutil.copytree(tiny_export, root / "art")
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("my notes\n")
    (root / "user.tflite").mkdir()                      # a folder named like a model file
    (root / "empty_images").mkdir()
    data = (root / "run" / "best.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 3])
    (root / "text.pt").write_text("not a checkpoint\n")
    raw = torch.load(root / "run" / "best.pt", map_location="cpu", weights_only=True)
    raw["model_spec"]["num_classes"] = 7           # the weights hold 10 classes: shapes do not fit
    torch.save(raw, root / "mismatch.pt")
    (root / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    few = root / "few_labels"
    shutil.copytree(root / "art" / "int8", few / "int8")
    card = json.loads((few / "int8" / "model.json").read_text())
    card["labels"] = card["labels"][:3]
    (few / "int8" / "model.json").write_text(json.dumps(card))
    shutil.copy(root / "art" / "samples.npz", few / "samples.npz")
    foreign = dict(np.load(root / "art" / "samples.npz"))
    foreign["class_names"] = np.array([f"c{i}" for i in range(10)])
    np.savez(root / "foreign_samples.npz", **foreign)
    (root / "inf.toml").write_text('name = "x"\n[camera]\nwidth = 160\nheight = 120\nfps = 30\n'
                    '[device]\ncore = "host"\nthreads = 1\n'
                                   "[budgets]\nlatency_ms = inf\nmemory_mb = 100\nmodel_size_mb = 10\n")
    (root / "bench_dir").mkdir()
    # issue 20's data-loss cases: a user's file inside an export's subfolder, a user's own report.json, a
    # folder that never held a run (with a metrics.json and a baseline/README.txt of the user's), a run
    # whose baseline/ is a symlink to a user's folder
    (root / "art" / "fp32" / "notes.txt").write_text("why fp32\n")
    (root / "user_sim").mkdir()
    (root / "user_sim" / "report.json").write_text('{"mine": true}\n')
    (root / "user_run" / "baseline").mkdir(parents=True)
    (root / "user_run" / "metrics.json").write_text('{"accuracy": 0.99}\n')
    (root / "user_run" / "baseline" / "README.txt").write_text("my baseline notes\n")
    shutil.copytree(tiny_run, root / "linked_run")
    (root / "linked_run" / "baseline").symlink_to(root / "user", target_is_directory=True)
    _hand_edited_checkpoints(root, raw)
    _user_data(root)
    return root


class _Global:
    """A pickle that names a global (os.system): what a malicious checkpoint carries. Harmless if ever run."""

    def __reduce__(self):
        return os.system, ("exit 0",)


def _hand_edited_checkpoints(root, raw: dict) -> None:
    """Checkpoints a user edited by hand or was handed: each is refused naming the file and the field."""
    for name, edit in (("version_str.pt", {"format_version": "1"}), ("types.pt", {"img_size": "64"})):
        torch.save({**raw, **edit}, root / name)
    state = {k: v.clone() for k, v in raw["state_dict"].items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].fill_(float("nan"))
    torch.save({**raw, "state_dict": state}, root / "nan.pt")
    torch.save({**raw, "model_spec": _Global()}, root / "evil.pt")
    last = torch.load(root / "run" / "last.pt", map_location="cpu", weights_only=True)
    for name, edit in (("resume_unknown", {"train_config": {**last["train_config"], "turbo": True}}),
                       ("resume_types", {"train_config": {**last["train_config"], "epochs": "5"}}),
                       ("resume_noopt", {"train_state": {k: v for k, v in last["train_state"].items()
                                                         if k != "optimizer"}})):
        shutil.copytree(root / "run", root / name)
        (root / name / "metrics.json").unlink()          # an unfinished run: --resume reads last.pt
        torch.save({**last, **edit}, root / name / "last.pt")


def _user_data(root) -> None:
    """A CIFAR folder whose meta has integer label names, image folders with a FIFO and a name that is not
    UTF-8, a bare .tflite, a pipeline whose model is "/", an export whose model.onnx is damaged."""
    import pickle

    cifar = root / "cifar_intnames"
    cifar.mkdir()
    batch = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"):
        (cifar / name).write_bytes(pickle.dumps(batch))
    (cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": list(range(10))}))
    images = np.load(root / "art" / "samples.npz")["images"]
    for folder, per_class in (("frames", 3), ("fifo_data", 12)):
        for c in ("a", "b"):
            (root / folder / c).mkdir(parents=True)
            for i in range(per_class):
                cv2.imwrite(str(root / folder / c / f"{i}.png"), images[i])
        os.mkfifo(root / folder / "a" / "stuck.png")      # a FIFO named like an image: reading it blocks forever
        (root / folder / "b" / "zero.png").symlink_to("/dev/zero")   # a device: reading it never ends
    (root / "frames" / "b" / "caf\udcff.png").write_bytes((root / "frames" / "b" / "0.png").read_bytes())
    shutil.copytree(root / "fifo_data", root / "badname_data", symlinks=True, ignore=lambda d, names: [
        n for n in names if not (Path(d) / n).is_dir() and not (Path(d) / n).is_file()])
    (root / "badname_data" / "b" / "caf\udcff.png").write_bytes((root / "frames" / "b" / "0.png").read_bytes())
    (root / "video\udcff.mp4").write_bytes(b"not decoded: the name is refused first")
    (root / "photo\udcff.png").write_bytes((root / "frames" / "b" / "0.png").read_bytes())
    (root / "bare\udcff").mkdir()
    shutil.copy(root / "art" / "int8" / "model.tflite", root / "bare\udcff" / "model.tflite")
    (root / "bare").mkdir()
    shutil.copy(root / "art" / "int8" / "model.tflite", root / "bare" / "model.tflite")
    (root / "three_labels.txt").write_text("a\nb\nc\n")
    (root / "frames.toml").mkdir()
    (root / "gone_pipeline").symlink_to(root / "nothing_here.toml")
    (root / "bad_only").mkdir()
    (root / "bad_only" / "notes.png").write_text("not an image")
    os.mkfifo(root / "bad_only" / "pipe.png")
    (root / "root_model.toml").write_text('name = "p"\n[[stage]]\nname = "cls"\nmodel = "/"\ntask = "classification"\n')
    shutil.copytree(root / "art", root / "bad_onnx", ignore=shutil.ignore_patterns("fp16", "fp32", "*.md"))
    (root / "bad_onnx" / "model.onnx").write_bytes(b"\xff\xff\xff not protobuf: a damaged model.onnx")


def _written(out, *, absent: tuple[str, ...]) -> None:
    """report.json and frames.csv are always written; what needed the missing library is not."""
    assert (out / "report.json").is_file() and (out / "frames.csv").is_file(), out
    assert not [n for n in absent if (out / n).exists()], sorted(p.name for p in out.iterdir())


def _bad_frames(out, count: int, *reasons: str) -> None:
    _written(out, absent=())
    report = json.loads((out / "report.json").read_text())
    assert report["bad_frames"]["count"] == count, report["bad_frames"]
    for reason in reasons:
        assert reason in " ".join(report["bad_frames"]["examples"]), report["bad_frames"]


def _skipped_files(checkpoint, count: int) -> None:
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["dataset"]["skipped_files"] == count


INT8 = "{ws}/art/int8"
CKPT = "{ws}/run/best.pt"
SIM = ["simulate", "--model", INT8, "--frames", "5", "--max-speed", "--no-video", "--out", "{ws}/sim_out"]
BENCH = ["bench", INT8, "--threads", "1", "--runs", "5", "--min-seconds", "0"]

CASES = [
    # train: options
    ("train-lr-inf", ["train", "--lr", "inf", "--out", "{ws}/t"], USER, "--lr"),
    ("train-lr-nan", ["train", "--lr", "nan", "--out", "{ws}/t"], USER, "--lr"),
    ("train-lr-negative", ["train", "--lr", "-1", "--out", "{ws}/t"], USER, "--lr"),
    ("train-warmup-nan", ["train", "--warmup-epochs", "nan", "--out", "{ws}/t"], USER, "--warmup-epochs"),
    ("train-split-seed-negative", ["train", "--split-seed", "-1", "--out", "{ws}/t"], USER, "--split-seed"),
    ("train-seed-negative", ["train", "--seed", "-3", "--out", "{ws}/t"], USER, "--seed"),
    ("train-epochs-zero", ["train", "--epochs", "0", "--out", "{ws}/t"], USER, "--epochs"),
    ("train-batch-one", ["train", "--batch-size", "1", "--out", "{ws}/t"], USER, "--batch-size"),
    ("train-weight-decay-inf", ["train", "--weight-decay", "inf", "--out", "{ws}/t"], USER, "--weight-decay"),
    ("train-label-smoothing-nan", ["train", "--label-smoothing", "nan", "--out", "{ws}/t"], USER, "--label-smoothing"),
    ("train-ema-decay-one", ["train", "--ema-decay", "1.5", "--out", "{ws}/t"], USER, "--ema-decay"),
    ("train-distill-temp-zero", ["train", "--distill-temp", "0", "--out", "{ws}/t"], USER, "--distill-temp"),
    ("train-unknown-model", ["train", "--model", "resnet9000", "--out", "{ws}/t"], USER, "unknown model"),
    ("train-huge-img", ["train", "--img-size", "4096", "--out", "{ws}/t"], USER, "img size"),
    ("train-missing-data", ["train", "--data", "{ws}/no_such_data", "--out", "{ws}/t"], USER, "does not exist"),
    ("train-missing-teacher", ["train", "--teacher", "{ws}/none.pt", "--out", "{ws}/t"], USER, "teacher"),
    ("train-unknown-act", ["train", "--act", "swish", "--out", "{ws}/t"], USER, "activation"),
    ("train-into-a-run", ["train", "--model", "edgevit_xxs", "--out", "{ws}/run"], USER, "--resume"),
    ("train-into-user-folder", ["train", "--out", "{ws}/user"], USER, "--force"),
    ("train-resume-nothing", ["train", "--resume", "--out", "{ws}/user"], USER, "nothing to resume"),
    ("train-resume-other-options", ["train", "--resume", "--epochs", "99", "--out", "{ws}/run"], USER, "--epochs"),
    ("train-unwritable", ["train", "--out", "/proc/edgevit-run"], USER, "cannot write"),
    # export
    ("export-missing-ckpt", ["export", "{ws}/none.pt", "--out", "{ws}/e"], USER, "does not exist"),
    ("export-truncated-ckpt", ["export", "{ws}/truncated.pt", "--out", "{ws}/e"], USER, "truncated"),
    ("export-text-ckpt", ["export", "{ws}/text.pt", "--out", "{ws}/e"], USER, "not a pytorch zip"),
    ("export-mismatched-weights", ["export", "{ws}/mismatch.pt", "--out", "{ws}/e"], USER, "size mismatch"),
    ("export-into-run-folder", ["export", CKPT, "--out", "{ws}/run"], USER, "best.pt"),
    ("export-into-user-folder", ["export", CKPT, "--out", "{ws}/user"], USER, "notes.txt"),
    ("export-out-is-a-file", ["export", CKPT, "--out", "{ws}/user/notes.txt"], USER, "not a folder"),
    ("export-unknown-format", ["export", CKPT, "--formats", "fp32,tensorrt", "--out", "{ws}/e"], USER, "tensorrt"),
    ("export-calib-zero", ["export", CKPT, "--calib-samples", "0", "--out", "{ws}/e"], USER, "--calib-samples"),
    ("export-calib-too-many", ["export", CKPT, "--calib-samples", "99999", "--out", "{ws}/e"], USER, "exceeds"),
    ("export-threads-negative", ["export", CKPT, "--threads", "-1", "--out", "{ws}/e"], USER, "--threads"),
    ("export-threads-huge", ["export", CKPT, "--threads", "100000", "--out", "{ws}/e"], USER, "--threads"),
    ("export-unwritable", ["export", CKPT, "--out", "/proc/edgevit-art"], USER, "cannot write"),
    # simulate
    ("sim-onnx-as-model", ["simulate", "--model", "{ws}/model.onnx", "--out", "{ws}/s"], USER, "not an export folder"),
    ("sim-missing-model", ["simulate", "--model", "{ws}/nothing", "--out", "{ws}/s"], USER, "model.json not found"),
    ("sim-folder-named-tflite", ["simulate", "--model", "{ws}/user.tflite", "--out", "{ws}/s"], USER,
     "is a folder, not a .tflite"),
    ("sim-duration-nan", [*SIM, "--duration", "nan"], USER, "--duration"),
    ("sim-duration-inf", [*SIM, "--duration", "inf"], USER, "--duration"),
    ("sim-duration-negative", [*SIM, "--duration", "-2"], USER, "--duration"),
    ("sim-duration-huge", [*SIM, "--duration", "1e308"], USER, "--duration"),   # inf frames: OverflowError before
    ("sim-frames-zero", [*SIM[:3], "--frames", "0", "--out", "{ws}/s"], USER, "--frames"),
    ("sim-threads-zero", [*SIM, "--threads", "0"], USER, "--threads"),
    ("sim-clock-nan", [*SIM, "--clock-ghz", "nan"], USER, "--clock-ghz"),
    ("sim-core-unknown", [*SIM, "--core", "cortex-m4"], USER, "--core must be one of"),
    ("sim-queue-zero", [*SIM, "--queue-size", "0"], USER, "--queue-size"),
    ("sim-unknown-profile", [*SIM, "--profile", "hololens"], USER, "unknown profile"),
    ("sim-profile-inf", [*SIM, "--profile", "{ws}/inf.toml"], USER, "latency_ms"),
    ("sim-camera-missing", [*SIM, "--source", "camera:57"], USER, "camera index 57"),
    ("sim-video-missing", [*SIM, "--source", "video:{ws}/none.mp4"], USER, "does not exist"),
    ("sim-empty-folder", [*SIM, "--source", "folder:{ws}/empty_images"], USER, "holds no images"),
    # a path that exists, but is not what the source reads: named for what it is (it was "does not exist")
    ("sim-video-is-a-folder", [*SIM, "--source", "video:{ws}/frames"], USER, "frames is a folder; give video:"),
    ("sim-video-is-a-fifo", [*SIM, "--source", "video:{ws}/frames/a/stuck.png"], USER, "is a FIFO"),
    ("sim-photo-is-a-folder", [*SIM, "--source", "photo:{ws}/frames"], USER, "frames is a folder; give photo:"),
    ("sim-folder-is-a-file", [*SIM, "--source", "folder:{ws}/three_labels.txt"], USER, "is a file, not a folder"),
    ("sim-folder-only-bad-frames", [*SIM, "--source", "folder:{ws}/bad_only"], USER,
     "every frame it gave was bad (2): "),   # the reasons were dropped: "source ended after 0 frames"
    ("sim-samples-with-the-photo-source", ["simulate", "--model", "{ws}/bare/model.tflite", "--samples",
                                           "{ws}/art/samples.npz", "--frames", "2", "--out", "{ws}/s"], USER,
     "--samples is the synthetic camera's sample pack, but the source is photo"),   # silently ignored before
    ("sim-samples-is-a-folder", [*SIM, "--samples", "{ws}/frames"], USER, "frames is a folder"),
    ("sim-queue-size-under-latest", [*SIM, "--queue-size", "4"], USER, "use --drop-policy queue"),
    ("sim-model-broken-link", ["simulate", "--model", "{ws}/gone_pipeline", "--out", "{ws}/s"], USER,
     "gone_pipeline is a broken symbolic link"),   # it said "model.json not found"
    ("sim-std-below-float32", ["simulate", "--model", "{ws}/bare/model.tflite", "--mean", "0,0,0", "--std",
                               "1e-320,1,1", "--out", "{ws}/s"], USER, "--std values"),
    ("sim-pipeline-broken-link", ["simulate", "--pipeline", "{ws}/gone_pipeline", "--out", "{ws}/s"], USER,
     "gone_pipeline is a broken symbolic link"),
    ("sim-folder-empty-path", [*SIM, "--source", "folder:"], USER, "folder: needs the folder of images"),
    ("sim-video-empty-path", [*SIM, "--source", "video:"], USER, "video: needs the video file"),
    ("sim-pipeline-is-a-folder", ["simulate", "--pipeline", "{ws}/frames.toml", "--out", "{ws}/s"], USER,
     "frames.toml is a folder; give the path of a .toml file"),
    ("sim-unwritable", [*SIM[:-1], "/proc/edgevit-sim"], USER, "cannot write"),
    ("sim-into-user-folder", [*SIM[:-1], "{ws}/user"], USER, "notes.txt"),
    ("sim-into-export-folder", [*SIM[:-1], "{ws}/art"], USER, "--force"),
    ("sim-fewer-labels-than-outputs", ["simulate", "--model", "{ws}/few_labels/int8", "--frames", "5", "--out",
                                       "{ws}/s"], USER, "labels"),
    ("sim-foreign-sample-pack", [*SIM, "--samples", "{ws}/foreign_samples.npz"], USER, "sample pack"),
    ("sim-bad-max-bad-frames", [*SIM, "--max-bad-frames", "-1"], USER, "--max-bad-frames"),
    ("sim-zero-max-bad-frames", [*SIM, "--max-bad-frames", "0"], USER, "--max-bad-frames must be >= 1"),
    # bench
    ("bench-threads-zero", [*BENCH[:2], "--threads", "0"], USER, "--threads"),
    ("bench-min-seconds-inf", [*BENCH, "--min-seconds", "inf"], USER, "--min-seconds"),
    ("bench-runs-zero", [*BENCH, "--runs", "0"], USER, "--runs"),
    ("bench-delay-nan", [*BENCH, "--run-delay-ms", "nan"], USER, "--run-delay-ms"),
    ("bench-json-is-a-folder", [*BENCH, "--json", "{ws}/bench_dir"], USER, "is a folder"),
    ("bench-json-unwritable", [*BENCH, "--json", "/proc/edgevit/b.json"], USER, "cannot write"),
    ("bench-missing-model", ["bench", "{ws}/none.tflite"], USER, "neither"),
    # issue 20, data loss 1: a user's file in a subfolder of an earlier export
    ("export-user-file-in-subfolder", ["export", CKPT, "--out", "{ws}/art"], USER, "fp32/notes.txt"),
    # 2: --json over a file bench did not write, over its own input (even with --force); target: same code
    ("bench-json-over-a-checkpoint", [*BENCH, "--json", "{ws}/run/best.pt"], USER, "--force"),
    ("bench-json-over-its-model", ["bench", "{ws}/art/int8/model.tflite", *BENCH[2:], "--json",
                                   "{ws}/art/int8/model.tflite", "--force"], USER, "input of this command"),
    ("bench-json-into-its-model-folder", [*BENCH, "--json", "{ws}/art/int8/model.json", "--force"], USER,
     "input of this command"),
    ("target-json-over-a-checkpoint", ["target", INT8, "--json", "{ws}/run/best.pt"], USER, "--force"),
    # 3: --force replaces earlier outputs only, never a user's file where an output goes
    ("sim-force-over-users-report", [*SIM[:-1], "{ws}/user_sim", "--force"], USER, "report.json"),
    ("train-force-into-users-folder", ["train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--out",
                                       "{ws}/user_run"], USER, "metrics.json"),
    # 4: train --force whose new run diverges leaves the earlier run as it was; a symlinked baseline/ is kept
    ("train-force-diverging", ["train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--lr", "1e30",
                               "--warmup-epochs", "0", "--no-progress", "--out", "{ws}/run"], USER, "diverged"),
    ("train-force-teacher-inside", ["train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--teacher",
                                    "{ws}/run/best.pt", "--out", "{ws}/run"], USER, "copy the teacher elsewhere"),
    ("train-force-baseline-symlink", ["train", "--force", "--model", "edgevit_xxs", "--baseline", "mobilenetv2_100",
                                      "--epochs", "1", "--out", "{ws}/linked_run"], USER, "baseline"),
    # info
    ("info-huge-img", ["info", "--img-size", "4096"], USER, "img size"),
    ("info-odd-img", ["info", "--img-size", "63"], USER, "img size"),
    # issue 20, item 5: user mistakes that used to be tracebacks (or hangs, or crashes)
    ("export-checkpoint-version-as-text", ["export", "{ws}/version_str.pt", "--out", "{ws}/e"], USER,
     "format_version"),
    ("export-checkpoint-wrong-type", ["export", "{ws}/types.pt", "--out", "{ws}/e"], USER, "img_size"),
    ("export-nan-weights", ["export", "{ws}/nan.pt", "--out", "{ws}/e"], USER, "the checkpoint holds NaN weights"),
    ("export-malicious-pickle", ["export", "{ws}/evil.pt", "--out", "{ws}/e"], USER,
     "refused: the checkpoint names the global"),
    ("train-resume-unknown-config-key", ["train", "--resume", "--out", "{ws}/resume_unknown"], USER, "'turbo'"),
    ("train-resume-config-wrong-type", ["train", "--resume", "--out", "{ws}/resume_types"], USER, "--epochs"),
    ("train-resume-edited-checkpoint", ["train", "--resume", "--no-progress", "--out", "{ws}/resume_noopt"], USER,
     "last.pt (changed since edgevit wrote it) is not the file edgevit wrote there"),
    ("train-resume-no-optimizer-state", ["train", "--resume", "--force", "--no-progress", "--out",
                                         "{ws}/resume_noopt"], USER, "optimizer"),
    ("train-cifar-integer-label-names", ["train", "--data", "cifar10:{ws}/cifar_intnames", "--out", "{ws}/t"], USER,
     "label_names"),
    ("train-data-image-not-utf8", ["train", "--data", "{ws}/badname_data", "--out", "{ws}/t"], USER,
     "not valid UTF-8"),
    ("train-seed-float", ["train", "--seed", "1e23", "--out", "{ws}/t"], USER, "--seed"),
    ("train-seed-overflow", ["train", "--seed", str(10**23), "--out", "{ws}/t"], USER, "--seed"),
    ("sim-seed-negative", [*SIM, "--seed", "-1"], USER, "--seed"),
    ("sim-out-not-utf8", [*SIM[:-1], "{ws}/out\udcff"], USER, "not valid UTF-8"),
    ("sim-video-not-utf8", [*SIM, "--source", "video:{ws}/video\udcff.mp4"], USER, "not valid UTF-8"),
    ("sim-photo-not-utf8", [*SIM, "--source", "photo:{ws}/photo\udcff.png"], USER, "not valid UTF-8"),
    ("sim-bare-model-not-utf8", ["simulate", "--model", "{ws}/bare\udcff/model.tflite", "--frames", "5",
                                 "--no-video", "--out", "{ws}/s"], USER, "not valid UTF-8"),
    ("bench-json-is-the-manifest", [*BENCH, "--json", "{ws}/art/int8/.edgevit-output.json", "--force"], USER,
     "bookkeeping"),
    ("sim-labels-is-a-folder", ["simulate", "--model", "{ws}/bare/model.tflite", "--labels", "{ws}/user",
                                "--frames", "3", "--out", "{ws}/s"], USER, "is a folder"),
    ("sim-bare-model-labels-miscount", ["simulate", "--model", "{ws}/bare/model.tflite", "--labels",
                                        "{ws}/three_labels.txt", "--frames", "3", "--out", "{ws}/s"], USER, "--labels"),
    ("sim-pipeline-model-is-root", ["simulate", "--pipeline", "{ws}/root_model.toml", "--frames", "3", "--out",
                                    "{ws}/s"], USER, "root_model.toml: [[stage]] cls: model '/'"),
    ("quant-report-damaged-onnx", ["quant-report", "{ws}/bad_onnx", "--images", "2", "--out", "{ws}/q"], USER,
     "model.onnx is not an ONNX model"),
    ("sim-out-dot", [*SIM[:-1], "."], USER, "notes.txt", {"cwd": "{ws}/user"}),
    ("train-disk-full", ["train", "--model", "edgevit_xxs", "--epochs", "1", "--no-progress", "--out",
                         "{ws}/t_full"], USER, "file too large", {"fsize": 512 * 1024}),
    ("train-without-torch", ["train", "--out", "{ws}/t"], USER, "pip install 'edgevit[train]'", {"block": ("torch",)}),
    ("export-without-torch", ["export", CKPT, "--out", "{ws}/e"], USER, "pip install 'edgevit[train,export]'",
     {"block": ("torch",)}),
    ("bench-worker-as-a-command", ["-m", "device_sim.bench", INT8], USER, "edgevit bench", {"python": True}),
    ("sim-usage-error", ["simulate", "--frames", "many"], USER, "see `edgevit simulate --help`"),
    ("device-sim-usage-error", ["-m", "device_sim", "--frames", "many"], USER, "--help", {"python": True}),
    # ... and what is skipped with a one-line note, the rest written (exit 0)
    ("sim-folder-with-fifo-and-non-utf8-name", ["simulate", "--model", INT8, "--max-speed", "--no-video", "--source",
                                                "folder:{ws}/frames", "--out", "{ws}/sim_fifo"], 0,
     "3 bad frame", {"then": lambda ws: _bad_frames(ws / "sim_fifo", 3, "not a regular file", "UTF-8")}),
    ("train-data-with-fifo", ["train", "--model", "edgevit_xxs", "--data", "{ws}/fifo_data", "--epochs", "1",
                              "--batch-size", "8", "--no-progress", "--out", "{ws}/t_fifo"], 0, "skipped 2 file",
     {"then": lambda ws: _skipped_files(ws / "t_fifo" / "best.pt", 2)}),
    ("sim-without-matplotlib", [*SIM[:-1], "{ws}/sim_nompl"], 0, "matplotlib is not installed",
     {"block": ("matplotlib",), "then": lambda ws: _written(ws / "sim_nompl", absent=("latency.png", "memory.png"))}),
    ("sim-without-video-writer", ["simulate", "--model", INT8, "--frames", "5", "--max-speed", "--out",
                                  "{ws}/sim_video"], 0, "demo.mp4 skipped",
     {"env": {"OPENCV_VIDEOIO_PRIORITY_FFMPEG": "0"},   # OpenCV without its FFmpeg backend has no mp4 writer
      "then": lambda ws: _written(ws / "sim_video", absent=("demo.mp4",))}),
]


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):   # as if the package were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from edgevit_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _limited(fsize: int):
    """The child's files may not grow beyond `fsize` bytes (writes past it fail with EFBIG, as on a full disk
    they fail with ENOSPC: the same path through atomic writes)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def _run(args: list[str], opts: dict, ws) -> subprocess.CompletedProcess:
    args = [a.replace("{ws}", str(ws)) for a in args]
    if not opts:
        return run_cli(*args, timeout=300)
    if not {"python", "block", "cwd", "env", "fsize"} & set(opts):
        return run_cli(*args, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "EDGEVIT_DEBUG"} | opts.get("env", {})
    if opts.get("python"):
        command = [sys.executable, *args]
    elif opts.get("block"):
        command = [sys.executable, "-c", BLOCKER.format(blocked=tuple(opts["block"])), *args]
    else:
        command = [sys.executable, "-m", "edgevit_cli", *args]
    return subprocess.run(command, cwd=opts.get("cwd", str(ROOT)).replace("{ws}", str(ws)), env=env,
                          capture_output=True, text=True, timeout=300, errors="backslashreplace",
                          preexec_fn=_limited(opts["fsize"]) if "fsize" in opts else None)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ws, case):
    """A mistake: its exit code and one line naming it, no traceback. A row with exit 0 (what is skipped,
    the rest written): no traceback, and its note in the output."""
    name, args, code, fragment, *rest = case
    before = snapshot(ws)
    proc = _run(args, rest[0] if rest else {}, ws)
    assert proc.returncode == code, f"{name}: exit {proc.returncode}\n{proc.stdout[-800:]}\n{proc.stderr[-1500:]}"
    if code == 0:
        assert "Traceback" not in proc.stderr, proc.stderr
        assert fragment.lower() in proc.stdout.lower(), f"{name}: {fragment!r} not in\n{proc.stdout}"
    else:
        assert_user_error(proc, fragment)
        assert "re-run `edgevit export`" not in proc.stderr or "bare" not in name, proc.stderr   # no export there
    if rest and "then" in rest[0]:
        rest[0]["then"](ws)
    assert_unchanged(before, ws, name)


def test_a_bug_is_a_traceback_and_exit_1_not_a_user_error(ws):
    """An exception edgevit did not expect inside a command (here a plain ValueError from deep in simulate):
    its traceback and the request to report it, exit 1, never the one line of a user's mistake."""
    code = ("import sys, device_sim.simulate as s\n"
            "def broken(*a, **k):\n    raise ValueError('operands could not be broadcast together')\n"
            "s.simulate = broken\n"
            "from edgevit_cli.main import main\n"
            f"sys.exit(main(['simulate', '--model', {str(ws / 'art' / 'int8')!r}, '--frames', '3', '--out', "
            f"{str(ws / 'sim_bug')!r}]))\n")
    before = snapshot(ws)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "EDGEVIT_DEBUG"})
    assert proc.returncode == EXIT_BUG, proc.stderr
    assert "Traceback" in proc.stderr and "operands could not be broadcast" in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"edgevit simulate: {BUG_NOTE}", proc.stderr
    assert "error:" not in proc.stderr
    assert_unchanged(before, ws, "a bug")


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 100 and EXIT_USAGE == USER


@pytest.mark.parametrize("delay", [1e300, 1e7])
def test_a_huge_run_delay_is_a_user_error_not_an_overflow(delay):
    """`bench --run-delay-ms 1e300` died in time.sleep with an OverflowError traceback (exit 1)."""
    from contract.errors import UserError
    from device_sim.bench import BenchOptions

    with pytest.raises(UserError, match="--run-delay-ms"):
        BenchOptions(run_delay_ms=delay)
    BenchOptions(run_delay_ms=33.3)


@pytest.mark.parametrize("text", ["0", "1,100000", "65"])
def test_bench_threads_out_of_range_are_a_user_error(text):
    """`bench --threads 100000` crashed its worker (SIGSEGV in the runtime's thread pool): a bug traceback."""
    from contract.errors import UserError
    from device_sim.bench import parse_threads

    with pytest.raises(UserError, match="--threads takes whole numbers 1..64"):
        parse_threads(text)
    assert parse_threads("1,2,64") == [1, 2, 64]


def test_train_threads_out_of_range_are_a_user_error():
    """`train --threads 100000` ran out of memory in thread stacks mid-import: a bug traceback, exit 1."""
    from contract.errors import UserError
    from edgevit.train.config import TrainConfig

    with pytest.raises(UserError, match="threads"):
        TrainConfig(out="x", threads=100_000)
    TrainConfig(out="x", threads=8)
