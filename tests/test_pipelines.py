"""Pipelines (device_sim.pipelines / device_sim.stages): the file format is checked like a profile; the
face pipeline on MediaPipe's models puts its landmarks on the astronaut's face and stops running the
detector once it tracks; the hand pipeline runs on a clip recorded from the synthetic camera; per-stage
columns, budgets and reports. The MediaPipe tests are skipped without `make mediapipe-models`."""

from __future__ import annotations

import csv
import json
import textwrap

import numpy as np
import pytest
from conftest import ROOT, assert_user_error, run_cli

from contract.errors import UserError
from device_sim.pipelines import builtin_pipelines, load_pipeline
from device_sim.sources.photo import models_dir

MEDIAPIPE = models_dir() / "mediapipe"
needs_models = pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.tflite").is_file(),
                                  reason="no MediaPipe models: run `make mediapipe-models` (make test does)")

# the astronaut portrait (512x512), measured by eye: the face's box and the outer corners of the eyes
FACE_BOX = (175, 55, 270, 170)          # x0, y0, x1, y1 in photo pixels
EYE_CORNERS_Y = 97

STAGE = """
[[stage]]
name = "det"
model = "{model}"
task = "detection"
[stage.anchors]
strides = [8, 16, 16, 16]
[stage.decode]
num_keypoints = 6
"""


def _write(tmp_path, text: str):
    path = tmp_path / "p.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def some_tflite(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"not really a model")   # load_pipeline only checks that the file exists
    return path


def _st(name="x", task="raw", body="", model="{model}") -> str:
    return f'\n[[stage]]\nname = "{name}"\nmodel = "{model}"\ntask = "{task}"\n{body}\n'


@pytest.mark.parametrize("extra, fragment", [
    (_st("lm", "landmarks", 'input = "nope"\n[stage.landmarks]\ncount = 5'),
     "input 'nope' must be 'frame' or an earlier detection stage"),
    (_st("det"), "two stages are named 'det'"),
    (_st("det_host"), "name 'det_host' and stage 'det' would both write the column det_host_ms"),   # det's host time
    (_st("x_host") + _st("x"), "name 'x' and stage 'x_host' would both write the column x_host_ms"),
    (_st("lm", "landmarks", 'input = "det"'), "missing [stage.landmarks]"),
    (_st(task="pose"), "task = 'pose' is not"),
    (_st(body="every = 0"), "every = 0 is not 1..1000"),
    (_st(body="every = 2.0"), "every = 2.0 is not a whole number (1..1000)"),
    (_st(body="every = true"), "every = true is not a whole number (1..1000)"),
    (_st(body="std = [1e-320, 0.5, 0.5]\nmean = [0.5, 0.5, 0.5]"),   # 0 in float32: a NaN detector, PASS
     "std = [1e-320, 0.5, 0.5] is not 3 numbers, each 1e-6..1e6"),
    (_st(body="input_range = [-1e38, 1e38]"), "input_range = [-1e+38, 1e+38] is not 2 numbers, each within -1e6..1e6"),
    (_st(body="speed = 2"), "unknown key [[stage]] x: 'speed'"),
    (_st(body="[stage.magic]\na = 1"), "unknown section [stage.magic]"),
    (_st(model="missing.tflite"), "model 'missing.tflite' not found"),
    (_st(body="skip_while_tracking = true"), "no stage with input = 'x' has a [stage.track]"),
    (_st(body='resize = "fit"'), "resize = 'fit' is not center_crop | letterbox | stretch"),
    (_st(body='[stage.resize]\nborder = "wrap"'), "[stage.resize] border = 'wrap' is not constant | replicate"),
    (_st(body='[stage.resize]\npolicy = "letterbox"\ninterpolation_down = "area"'),
     "[stage.resize]: interpolation 'area' resizes pixels inside the frame"),
    (_st("lm", "landmarks", 'input = "det"\n[stage.landmarks]\ncount = 5\n[stage.resize]\npolicy = "letterbox"\n'
                            'interpolation_down = "area"'),   # a crop stage's model loads the whole-frame form too
     "[stage.resize]: interpolation 'area' resizes pixels inside the frame"),
    (_st(body='labels = ["a", "b"]'), "labels names a classifier's classes; a raw stage does not read them"),
    (_st("d2", "detection", 'labels = ["face"]\n[stage.anchors]\nstrides = [8]\n[stage.decode]\nnum_keypoints = 6'),
     "a detection stage does not read them"),   # accepted and ignored before
    (_st("lm", "landmarks", 'input = "det"\n[stage.landmarks]\ncount = 5\n[stage.track]\nrotation_landmarks = [0, 1]'),
     "[stage.track] needs [stage.landmarks] presence_output"),   # a track that never ends: the detector idled
    (STAGE.replace("strides = [8, 16, 16, 16]", "strides = [8, 16, 16, 16]\naspect_ratios = [inf]")
     .replace('name = "det"', 'name = "d"'), "[stage.anchors] aspect_ratios = [inf] is not numbers 1e-3..1e3"),
    (STAGE.replace("strides = [8, 16, 16, 16]", "strides = [8, 16, 16, 16]\nmin_scale = 1e300")
     .replace('name = "det"', 'name = "d"'), "[stage.anchors] min_scale = 1e+300 is not 0 < x <= 16"),
    (_st(body="max_crops = 2"), "max_crops applies to a stage on crops"),
    (_st(body="[stage.crop]\nscale = 7.0"), "[stage.crop] applies to a stage on crops"),
    (_st("lm", "landmarks", 'input = "det"\nevery = 5\n[stage.landmarks]\ncount = 5'),   # silently ignored before
     "every applies to a whole-frame stage (a stage on crops runs on every crop that det gives)"),
    (_st("lm", "landmarks", 'input = "det"\nskip_while_tracking = true\n[stage.landmarks]\ncount = 5'),
     "skip_while_tracking applies to a whole-frame stage"),
    (_st("lm", "landmarks", 'input = "det"\n[stage.landmarks]\ncount = 5\n[stage.crop]\nshift_y = 1e308'),
     "[stage.crop] shift_y = 1e+308 is not -100..100"),            # inf crops, then a NaN angle: a traceback
    (_st("lm", "landmarks", 'input = "det"\n[stage.landmarks]\ncount = 5\n[stage.track]\nrotation_landmarks = [0, 1]\n'
                            'scale = 1e300'), "[stage.track] scale = 1e+300 is not 1e-3..1e3"),
])
def test_pipeline_files_are_checked(tmp_path, some_tflite, extra, fragment):
    path = _write(tmp_path, (STAGE + extra).replace("{model}", some_tflite.name))
    with pytest.raises(UserError, match=None) as e:
        load_pipeline(path)
    assert fragment in str(e.value) and str(path) in str(e.value)


def test_the_pipelines_own_name_must_be_a_string(tmp_path, some_tflite):
    path = _write(tmp_path, "name = 42\n" + STAGE.replace("{model}", some_tflite.name))
    with pytest.raises(UserError, match="name = 42 is not a string"):
        load_pipeline(path)


@needs_models
@pytest.mark.parametrize("section, key, value, fragment", [
    ("landmarks", "count", "5000", "count x dims = 5000 x 3 = 15000, but output 0 of face_landmark.tflite holds 1404"),
    ("landmarks", "dims", "2", "count x dims = 468 x 2 = 936"),
    ("landmarks", "output", "7", "output = 7, but face_landmark.tflite has 2 output(s)"),
    ("landmarks", "presence_output", "9", "presence_output = 9"),
    ("landmarks", "presence_output", "0", "presence_output = 0 is the landmarks' own output (output = 0)"),
    ("decode", "boxes_output", "9", "boxes_output = 9, but face_detection_short_range.tflite has 2 output(s)"),
    ("decode", "scores_output", "0", "boxes_output and scores_output are both 0"),
    ("decode", "box_offset", "20", "box_offset = 20 with num_keypoints = 6 reads values 20..23 of each anchor, but "
                                   "face_detection_short_range.tflite gives 16 per anchor"),
    ("decode", "keypoint_offset", "14", "keypoint_offset = 14"),
    ("decode", "num_keypoints", "64", "keypoint_offset = 4 with num_keypoints = 64"),
    ("decode", "scale", "1e-300", "scale = 1e-300 is not 1e-6..1e9"),      # inf points, a NaN angle in the crop
    ("landmarks", "scale", "1e-300", "scale = 1e-300 is not 1e-6..1e9"),
])
def test_decoding_keys_that_do_not_fit_the_model_are_refused_before_any_frame(tmp_path, section, key, value,
                                                                              fragment):
    """The face pipeline with one decoding key edited: one line naming the pipeline, stage and key, at load (a
    traceback at the first frame with a face, or garbage read silently, before)."""
    import re

    from device_sim.pipelines import PIPELINE_DIR
    from device_sim.stages import load_stage_models

    text = (PIPELINE_DIR / "face.toml").read_text()
    start = text.index(f"[stage.{section}]")
    body = text[start:]
    line = re.search(rf"^{key} = .*$", body, re.M)
    body = body[:line.start()] + f"{key} = {value}" + body[line.end():] if line else \
        body.replace(f"[stage.{section}]", f"[stage.{section}]\n{key} = {value}", 1)
    path = tmp_path / "face.toml"
    path.write_text(text[:start] + body)
    (tmp_path / "mediapipe").symlink_to(MEDIAPIPE)
    with pytest.raises(UserError) as e:
        load_stage_models(load_pipeline(path))
    assert fragment in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)


@needs_models
def test_a_detector_is_no_segmentation_model(tmp_path):
    from device_sim.model import BareModel, DeployedModel

    with pytest.raises(UserError, match=r"needs a mask over the 128x128 input .* but it is \(1, 896, 16\)"):
        DeployedModel.load(MEDIAPIPE / "face_detection_short_range.tflite", bare=BareModel(task="segmentation"))


def test_stage_names_the_frame_owns_are_reserved():
    """Derived from the frame's own columns: the names the issue found overwriting them are all in it, and
    exactly the reserved names have a column that is the frame's."""
    from device_sim.frames import FRAME_COLUMNS, STAGE_COLUMN_KINDS, reserved_stage_names, stage_column

    reserved = reserved_stage_names()
    assert {"e2e", "inference", "queue", "preprocess", "postprocess"} <= set(reserved)
    for name in reserved + ["detector", "landmarks", "palm", "capture", "index"]:
        clash = {stage_column(name, k) for k in STAGE_COLUMN_KINDS} & set(FRAME_COLUMNS)
        assert bool(clash) == (name in reserved), (name, clash)


@pytest.mark.parametrize("name", ["e2e", "inference", "queue", "preprocess", "postprocess", "inference_host"])
def test_a_stage_named_like_a_frame_column_is_refused(tmp_path, some_tflite, name):
    path = _write(tmp_path, (STAGE + _st(name)).replace("{model}", some_tflite.name))
    with pytest.raises(UserError) as e:
        load_pipeline(path)
    assert f"name {name!r} is reserved" in str(e.value) and "rename the stage" in str(e.value)
    assert str(path) in str(e.value)


def test_a_stage_named_frame_is_refused(tmp_path, some_tflite):
    path = _write(tmp_path, (STAGE + _st("frame")).replace("{model}", some_tflite.name))
    with pytest.raises(UserError, match="name 'frame' is reserved: input = 'frame' means the whole frame"):
        load_pipeline(path)


def test_cli_refuses_a_stage_named_e2e_before_writing_anything(tmp_path, some_tflite):
    """Issue 20: a stage named e2e overwrote the frame's e2e_ms, so a 1,556 ms p95 reported 14 ms PASS."""
    path = _write(tmp_path, (STAGE + _st("e2e")).replace("{model}", some_tflite.name))
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli("simulate", "--pipeline", str(path), "--out", str(out), "--frames", "3")
    assert proc.returncode == 2
    assert_user_error(proc, str(path), "'e2e' is reserved", "rename the stage")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_good_pipeline_file_loads(tmp_path, some_tflite):
    path = _write(tmp_path, (STAGE + """
        [[stage]]
        name = "lm"
        model = "{model}"
        task = "landmarks"
        input = "det"
        max_crops = 2
        [stage.landmarks]
        count = 21
        presence_output = 1
        [stage.track]
        rotation_landmarks = [0, 9]
        [stage.budgets]
        latency_ms = 12
        """).replace("{model}", some_tflite.name))
    spec = load_pipeline(path)
    assert [s.name for s in spec.stages] == ["det", "lm"] and spec.feeds("det") == [spec.stages[1]]
    assert spec.stages[1].on_crops and spec.stages[1].budgets == {"latency_ms": 12.0}
    assert spec.stages[0].model == some_tflite


def test_cli_names_a_bad_pipeline_in_one_line(tmp_path):
    assert_user_error(run_cli("simulate", "--pipeline", "nosuch"), "unknown pipeline 'nosuch'", "face")
    both = run_cli("simulate", "--pipeline", "face", "--model", "x.tflite")   # argparse: usage + one error line
    assert both.returncode == 2 and "--model: not allowed with argument --pipeline" in both.stderr


@needs_models
@pytest.mark.parametrize("name", builtin_pipelines())
def test_builtin_pipelines_match_their_models(name):
    """Every shipped pipeline loads, and each detector's anchors match its model's outputs."""
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    spec = load_pipeline(name)
    pipe = Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])
    out = pipe.process(np.full((480, 640, 3), 128, np.uint8))
    assert out.valid and set(out.columns) == {f"{s.name}_{c}" for s in spec.stages
                                              for c in ("ms", "host_ms", "runs", "found", "bad_regions")}


def _face_pipeline(path=None):
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    spec = load_pipeline(path or "face")
    return Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])


@needs_models
@pytest.mark.parametrize("edit", ["", "scale = 1.0\nnum_keypoints", "scale = 1e-6\nnum_keypoints",
                                  "scale = 1.0\npresence_output"])   # the landmarks' scale: points 192 crops away
def test_regions_no_crop_can_be_taken_of_make_the_frame_invalid(tmp_path, edit):
    """A decode scale that is not the detector's input size (1.0 for 128) gives boxes dozens of frames wide: the
    crop stage dropped them silently, ran on no frame, and the run PASSed with exit 0. They are counted per frame
    (landmarks_bad_regions) and the frame is invalid (the invalid-output budget)."""
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera

    text = (ROOT / "device_sim" / "pipelines" / "face.toml").read_text().replace(
        'model = "mediapipe/', f'model = "{MEDIAPIPE.resolve()}/')
    if edit:
        was = "scale = 192.0\npresence_output" if "presence" in edit else "scale = 128.0\nnum_keypoints"
        assert was in text
        text = text.replace(was, edit)
    pipe = _face_pipeline(_write(tmp_path, text))
    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    outcome = pipe.process(cam.replay(0))
    assert outcome.columns["detector_found"] == 1
    if "presence" in edit:   # the crop ran; its points are implausible, and the track they give cannot be taken
        assert not outcome.valid and outcome.columns["landmarks_runs"] == 1
        return
    assert (outcome.valid, outcome.columns["landmarks_bad_regions"], outcome.columns["landmarks_runs"]) == (
        (True, 0, 1) if not edit else (False, 1, 0))


@needs_models
def test_face_landmarks_land_on_the_face_and_tracking_skips_the_detector():
    """The camera sways, zooms and turns over the portrait; mapped back onto the photograph, the landmarks'
    centre stays inside the face and the outer eye corners at eye height, frame after frame."""
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera

    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    pipe = _face_pipeline()
    detector_runs, x0, y0, x1, y1 = [], *FACE_BOX
    for i in range(0, 240, 3):
        pipe.process(cam.replay(i))
        detector_runs.append(pipe.view.ran["detector"])
        found = pipe.view.found["landmarks"]
        assert len(found) == 1, f"frame {i}: no face"
        on_photo = cam.to_photo(i, found[0].points)
        cx, cy = on_photo.mean(0)
        assert x0 < cx < x1 and y0 < cy < y1, (i, cx, cy)
        (lx, ly), (rx, ry) = on_photo[[33, 263]]
        assert abs(ly - EYE_CORNERS_Y) < 12 and abs(ry - EYE_CORNERS_Y) < 12 and lx < rx, (i, on_photo[[33, 263]])
    assert detector_runs[0] == 1 and sum(detector_runs[1:]) == 0   # found once, then tracked


@needs_models
@pytest.mark.parametrize("scale", [5.0, 0.001, 1000.0, "1.5\nshift_y = 100.0"])
def test_a_track_that_runs_away_ends_and_the_detector_looks_again(tmp_path, scale):
    """[stage.track] scale within its bounds still compounds: each frame's crop is scale x the points found in the
    one before (5.0: NaN points after a few frames, a traceback; 0.001: a zero-sized crop, a ZeroDivisionError).
    The track ends once its crop is not a region (non-finite, under a pixel, past 16 frame sizes) and the detector
    runs again, even with a presence threshold of 0.001 that lets nearly everything through; the frames whose track
    ran away are invalid (counted as bad regions: a misconfigured track is not a PASS)."""
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    text = (ROOT / "device_sim" / "pipelines" / "face.toml").read_text().replace(
        'model = "mediapipe/', f'model = "{MEDIAPIPE.resolve()}/')
    text = text.replace("scale = 1.5\nextent", f"scale = {scale}\nextent")
    text = text.replace("presence_threshold = 0.5", "presence_threshold = 0.001")
    assert f"scale = {scale}" in text
    spec = load_pipeline(_write(tmp_path, text))
    pipe = Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])
    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    runs, idle, invalid = [], [], 0
    for i in range(40):
        outcome = pipe.process(cam.replay(i))
        runs.append(pipe.view.ran["detector"])
        idle += [i] if pipe.view.ran["detector"] + pipe.view.ran["landmarks"] == 0 else []
        invalid += not outcome.valid
    assert runs[0] == 1 and sum(runs[1:]) >= 1   # the track ended at least once; the detector found the face again
    assert not idle, f"frames on which nothing ran (the track ended one frame late): {idle}"
    if scale != 5.0:      # 5x a frame: the face shrinks in its crop until its presence ends the track (valid)
        assert invalid >= 1   # a crop past 16 frame sizes, under a pixel or off the frame: PASSed before


@needs_models
def test_a_detector_whose_outputs_are_nan_makes_the_frame_invalid():
    """NaN scores clear no threshold, so nothing is decoded and the empty detections looked finite: a run whose
    detector gave only NaN passed its non-finite-output budget. The raw outputs are checked."""
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera

    pipe = _face_pipeline()
    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    assert pipe.process(cam.replay(0)).valid
    detector = pipe.stages[0].model
    real = detector.invoke
    detector.invoke = lambda x: [np.full_like(o, np.nan) for o in real(x)]
    pipe.reset()
    outcome = pipe.process(cam.replay(0))
    assert not outcome.valid and outcome.columns["detector_found"] == 0


def test_tracking_roi_follows_the_landmarks_by_hand():
    """roi_from_points: a level square of points -> a square crop around them; turned 90 degrees -> rotation."""
    from device_sim.decode.geometry import roi_from_points

    pts = np.array([[100, 100], [200, 100], [200, 160], [100, 160]], np.float32)
    roi = roi_from_points(pts, rotation_points=(0, 1), scale=1.5)
    assert (roi.x, roi.y, roi.width, roi.height, roi.rotation) == pytest.approx((150, 130, 150, 150, 0))
    shifted = roi_from_points(pts, rotation_points=(0, 1), scale=1.0, shift_y=-0.5)
    assert (shifted.x, shifted.y) == pytest.approx((150, 100))       # up by half the points' 60 px height
    up = roi_from_points(pts, rotation_points=(3, 0), target_angle=np.pi / 2, scale=1.0)
    assert up.rotation == pytest.approx(0.0) and up.width == pytest.approx(100)   # 3 -> 0 points up already
    turned = roi_from_points(pts, rotation_points=(0, 3), target_angle=0.0, scale=1.0)
    assert turned.rotation == pytest.approx(np.pi / 2)                # 0 -> 3 points down: turn a quarter


@needs_models
def test_face_pipeline_on_ar_glasses_reports_every_stage(tmp_path):
    """Acceptance: per-stage and per-frame latency and memory against budgets (projected where the ARM
    environment exists), the detector's run ratio once tracking, frames.csv columns, plots, video."""
    out = tmp_path / "face"
    proc = run_cli("simulate", "--pipeline", "face", "--profile", "ar-glasses", "--duration", "4", "--out", str(out))
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr    # 3: a budget missed (timing is not asserted)
    report = json.loads((out / "report.json").read_text())
    det, lm = report["stages"]
    assert (det["name"], lm["name"]) == ("detector", "landmarks")
    assert det["run_ratio_once_tracking"] is not None and det["run_ratio_once_tracking"] < 0.5
    assert lm["frames_found"] >= 0.9 * report["frames"]["processed"]
    assert set(report["device"]["stages"]) == {"detector", "landmarks"}
    kinds = {t["kind"] for t in report["device"]["stages"].values()}
    assert kinds == {report["device"]["kind"]}
    if report["device"]["kind"] == "projected":   # each stage projected from its own model's instructions
        counts = [t["details"]["instructions_per_inference"] for t in report["device"]["stages"].values()]
        assert len(set(counts)) == 2 and min(counts) > 0
    budgets = {b["budget"]: b for b in report["budgets"]}
    assert "landmarks.latency_ms" in budgets and budgets["landmarks.latency_ms"]["value"] > 0
    models = report["memory_mb"]["device"]["models"]
    assert set(models) == {"detector", "landmarks"} and all(m["resident_mb"] > 0 for m in models.values())
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert len(rows) == report["frames"]["processed"]
    for r in rows:   # a frame's time is its stages' time (all invocations): the columns add up
        assert float(r["detector_ms"]) + float(r["landmarks_ms"]) == pytest.approx(
            float(r["preprocess_ms"]) + float(r["inference_ms"]) + float(r["postprocess_ms"]), rel=1e-4, abs=1e-3)
    assert report["video_frames"] == len(rows) and (out / "latency.png").is_file()


@needs_models
def test_hand_pipeline_runs_on_a_clip_recorded_from_the_synthetic_camera(tmp_path):
    """The photo camera recorded to an .mp4, replayed as --source video:...: the pipeline's rules hold on
    every frame (the palm detector runs unless max_crops hands are tracked; at most max_crops crops)."""
    import cv2

    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera

    cam = PhotoCamera(SourceSpec(arg="", width=320, height=240, fps=30, samples=None, labels=[]))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for i in range(45):
        writer.write(cam.replay(i))
    writer.release()
    out = tmp_path / "hand"
    proc = run_cli("simulate", "--pipeline", "hand", "--source", f"video:{clip}", "--core", "host", "--max-speed",
                   "--out", str(out))
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["processed"] == 45 and report["stop_reason"].startswith("source ended")
    assert [s["name"] for s in report["stages"]] == ["palm", "hand"]
    rows = list(csv.DictReader(open(out / "frames.csv")))
    prev_tracked = 0
    for r in rows:
        palm, crops, kept = (int(float(r[k])) for k in ("palm_runs", "hand_runs", "hand_found"))
        assert palm == (1 if prev_tracked < 2 else 0)
        assert crops <= 2 and kept <= crops
        prev_tracked = kept


def test_a_stage_says_its_input_geometry(tmp_path, some_tflite):
    """`resize = "letterbox"` (a preset) and a [stage.resize] table both become the stage's bare-model description;
    a crop stage's table without a policy starts from the crop default (a stretch of the ROI)."""
    crop = 'input = "det"\n[stage.landmarks]\ncount = 5\n[stage.resize]\nborder = "replicate"'
    det = STAGE.replace('task = "detection"', 'task = "detection"\nresize = "letterbox"')
    text = det + _st("lm", "landmarks", crop)
    spec = load_pipeline(_write(tmp_path, text.replace("{model}", some_tflite.name)))
    det, lm = spec.stages
    assert det.describe["resize"]["policy"] == "letterbox" and det.describe["resize"]["pixel_centers"] == "corner"
    assert lm.describe["resize"] == {"border": "replicate"}
    from contract.images import check_resize_policy

    assert check_resize_policy(lm.describe["resize"], crop=True)["policy"] == "stretch"


@needs_models
def test_builtin_pipelines_feed_their_models_as_mediapipe_does():
    """face.toml and hand.toml: detectors letterboxed, landmark crops with a replicated border; selfie stretched."""
    from device_sim.stages import load_stage_models

    policies = {}
    for name in ("face", "hand", "selfie"):
        spec = load_pipeline(name)
        for st, model in zip(spec.stages, load_stage_models(spec)):
            policies[name, st.name] = (model.resize["policy"], model.crop_resize["border"])
    assert policies[("face", "detector")][0] == "letterbox" and policies[("hand", "palm")][0] == "letterbox"
    assert policies[("face", "landmarks")][1] == "replicate" and policies[("hand", "hand")][1] == "replicate"
    assert policies[("selfie", "segmenter")][0] == "stretch"


@needs_models
def test_cli_refuses_a_bad_resize_in_one_line(tmp_path):
    model = MEDIAPIPE / "face_detection_short_range.tflite"
    proc = run_cli("simulate", "--model", str(model), "--resize", "fit", "--frames", "1", "--out", str(tmp_path / "o"))
    assert_user_error(proc, "--resize fit is not one of center_crop, letterbox, stretch")
    assert not (tmp_path / "o").exists()


@needs_models
def test_a_builtin_pipeline_finds_its_models_from_any_working_folder(tmp_path, monkeypatch):
    """The models a pipeline names are looked up beside the project when ./.models is not there (the guest that
    counts pre/post-processing is told the same folder): a run started elsewhere is still projected."""
    from device_sim.sources.photo import MODELS_DIR_ENV, models_dir
    from device_sim.stages import load_stage_models

    if not (ROOT / ".models" / "mediapipe").is_dir():
        pytest.skip("the models are not in the project's .models (EDGEVIT_MODELS_DIR points elsewhere)")
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert models_dir().resolve() == (ROOT / ".models").resolve()
    assert len(load_stage_models(load_pipeline("face"))) == 2


@pytest.mark.parametrize("describe", ["", "input_range = [0.0, 1.0]"])
def test_a_stage_model_that_is_no_model_is_named_as_the_pipelines(tmp_path, describe):
    """model = a text file: with input_range it was called 'has a model card', without it the advice named
    --model, an option a pipeline's stage does not have."""
    from device_sim.stages import load_stage_models

    (tmp_path / "notes.txt").write_text("not a model")
    path = _write(tmp_path, _st(model="notes.txt", body=describe))
    with pytest.raises(UserError) as e:
        load_stage_models(load_pipeline(path))
    assert "stage x: model " in str(e.value) and "notes.txt is not a .tflite, an export folder or its model.json; " \
        "point model at one" in str(e.value) and "--model" not in str(e.value) and "model card" not in str(e.value)
