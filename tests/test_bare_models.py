"""Any .tflite in the simulator: a model nobody exported gets its card from its tensors plus the user's
options, and runs through the same code as an exported one; MediaPipe's own models run as they ship
(`make mediapipe-models` fetches them; skipped, with the reason, where it has not)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli

from device_sim.profiles import load_profile
from device_sim.sources.base import SourceSpec
from device_sim.sources.photo import PhotoCamera, models_dir

MEDIAPIPE = models_dir() / "mediapipe"


def _preds(folder) -> list[tuple[int, int]]:
    return [(int(r["index"]), int(r["pred"])) for r in csv.DictReader(open(folder / "frames.csv"))]


def test_a_bare_copy_predicts_what_the_exported_model_predicts(tiny_export, tmp_path):
    """The fp32 export takes raw pixels (normalization folded), so the bare file with its labels and the
    default input range is the same model: the same frames give the same predictions."""
    bare = tmp_path / "bare" / "digits.tflite"
    bare.parent.mkdir()
    shutil.copy(tiny_export / "fp32" / "model.tflite", bare)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(json.loads((tiny_export / "fp32" / "model.json").read_text())["labels"]) + "\n")
    common = ("--profile", "phone", "--core", "host", "--frames", "25", "--max-speed", "--no-video",
              "--samples", str(tiny_export / "samples.npz"))
    card = run_cli("simulate", "--model", str(tiny_export / "fp32"), *common, "--out", str(tmp_path / "card"))
    assert card.returncode == 0, card.stderr
    proc = run_cli("simulate", "--model", str(bare), "--labels", str(labels), *common, "--source", "synthetic",
                   "--out", str(tmp_path / "bare_out"))
    assert proc.returncode == 0, proc.stderr
    assert _preds(tmp_path / "bare_out") == _preds(tmp_path / "card")
    report = json.loads((tmp_path / "bare_out" / "report.json").read_text())
    assert report["model"]["task"] == "classification" and report["accuracy"] >= 0.8


def test_photo_camera_moves_and_replays(tmp_path):
    import cv2

    photo = tmp_path / "p.png"
    yy, xx = np.mgrid[0:300, 0:400]
    cv2.imwrite(str(photo), np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8))
    cam = PhotoCamera(SourceSpec(arg=str(photo), width=160, height=120, fps=30, samples=photo, labels=[]))
    frames = [cam.read() for _ in range(40)]
    assert all(f[1] is None and f[0].shape == (120, 160, 3) for f in frames)
    assert np.array_equal(cam.replay(17), frames[17][0])                       # frame i renders the same again
    assert np.abs(frames[0][0].astype(int) - frames[39][0].astype(int)).mean() > 5   # the camera moved


@pytest.mark.parametrize("extra,fragment", [
    (["--mean", "0.5,0.5,0.5"], "--mean and --std go together"),
    (["--input-range=1,0"], "LOW < HIGH"),
    (["--input-range", "0,1,2"], "--input-range takes 2 comma-separated numbers"),
    (["--input-range=-1e38,1e38"], "--input-range takes numbers within -1e6..1e6"),   # float32 overflow warnings
    (["--labels", "/nonexistent/labels.txt"], "--labels /nonexistent/labels.txt does not exist"),
    (["--source", "synthetic"], "bare .tflite with no sample pack"),
    (["--labels", str(Path(__file__).parents[1] / "README.md"), "--task", "raw"],   # accepted and ignored before
     "--labels names a classifier's classes; a raw model does not read them"),
    (["--source", "photo:/nonexistent.png"], "photo /nonexistent.png does not exist; give photo:PATH"),
])
def test_bare_model_options_are_checked(tiny_export, tmp_path, extra, fragment):
    bare = tmp_path / "m.tflite"
    shutil.copy(tiny_export / "int8" / "model.tflite", bare)
    proc = run_cli("simulate", "--model", str(bare), "--frames", "3", "--out", str(tmp_path / "o"), *extra)
    assert_user_error(proc, fragment)
    assert not (tmp_path / "o").exists()


def test_bare_options_do_not_override_a_model_card(tiny_export, tmp_path):
    proc = run_cli("simulate", "--model", str(tiny_export / "int8"), "--input-range", "0,1", "--frames", "3",
                   "--out", str(tmp_path / "o"))
    assert_user_error(proc, "has a model card", "bare .tflite only")


@pytest.mark.skipif(not (MEDIAPIPE / "face_detection_short_range.tflite").is_file(),
                    reason="no MediaPipe models: run `make mediapipe-models` (make test does)")
def test_mediapipe_face_detector_runs_as_shipped(tmp_path):
    out = tmp_path / "fd"
    proc = run_cli("simulate", "--model", str(MEDIAPIPE / "face_detection_short_range.tflite"), "--profile",
                   "ar-glasses", "--duration", "3", "--input-range=-1,1", "--out", str(out))
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr   # 3: a budget missed (timing is not asserted)
    report = json.loads((out / "report.json").read_text())
    model = report["model"]
    assert model["task"] == "raw" and model["input"]["shape"] == [1, 128, 128, 3]
    assert model["input"]["value_range"] == [-1.0, 1.0] and len(model["outputs"]) == 2
    assert sorted(int(np.prod(o["shape"])) for o in model["outputs"]) == [896, 896 * 16]   # scores, boxes
    assert report["frames"]["processed"] >= 30 and report["invalid_outputs"] == 0
    assert report["source"].startswith("photo") and report["device"]["kind"] in ("projected", "host")
    for name in ("frames.csv", "latency.png", "memory.png", "demo.mp4"):
        assert (out / name).is_file(), name
    assert report["video_frames"] == report["frames"]["processed"]
    assert load_profile("ar-glasses").budgets["latency_ms"] == report["budgets"][0]["limit"]


@pytest.mark.skipif(not (MEDIAPIPE / "selfie_segmentation.tflite").is_file(),
                    reason="no MediaPipe models: run `make mediapipe-models` (make test does)")
def test_mediapipe_selfie_segmentation_masks_the_person(tmp_path):
    """The mask covers part of the portrait, not all of it and not nothing, and is drawn into the video."""
    import cv2

    out = tmp_path / "seg"
    proc = run_cli("simulate", "--model", str(MEDIAPIPE / "selfie_segmentation.tflite"), "--task", "segmentation",
                   "--input-range", "0,1", "--profile", "ar-glasses", "--core", "host", "--frames", "20", "--max-speed",
                   "--out", str(out))
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    rows = list(csv.DictReader(open(out / "frames.csv")))
    coverage = np.array([float(r["confidence"]) for r in rows])
    assert 0.15 < np.median(coverage) < 0.9, coverage
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    ok, frame = cap.read()
    assert ok
    b, g, r = (frame[100:, :, c].astype(float).mean() for c in range(3))
    assert g > r and g > b      # the person (most of the lower frame) is tinted green
