"""Task kinds as registered objects (device_sim.tasks): a pipeline file is checked against each stage's kind
(its sections and keys, where it may run, which stages it may read) before any frame; a kind registered by a
test runs through a pipeline end to end; a landmarks stage may read another landmarks stage. The runs on
MediaPipe's models are skipped without `make mediapipe-models`."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli
from test_pipelines import STAGE

import device_sim.tasks as tasks
from contract.errors import UserError
from device_sim.pipelines import load_pipeline
from device_sim.sources.photo import models_dir
from device_sim.tasks import Task, register_task, task_named

MEDIAPIPE = (models_dir() / "mediapipe").resolve()
needs_models = pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.tflite").is_file(),
                                  reason="no MediaPipe models: run `make mediapipe-models` (make test does)")

DETECTOR = STAGE.format(model="m.tflite")   # a detection stage, as test_pipelines writes one
CLASSIFIER = """
[[stage]]
name = "cls"
model = "m.tflite"
task = "classification"
labels = ["a", "b"]
"""


def _landmarks(name="lm", source: str | None = "det", body="[stage.landmarks]\ncount = 5") -> str:
    line = f'input = "{source}"\n' if source else ""
    return f'\n[[stage]]\nname = "{name}"\nmodel = "m.tflite"\ntask = "landmarks"\n{line}{body}\n'


@pytest.fixture
def pipeline_file(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"not really a model")   # load_pipeline only checks that it exists

    def write(text: str):
        path = tmp_path / "p.toml"
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.mark.parametrize("text, fragments", [
    (CLASSIFIER + _landmarks(source="cls"),
     ["[[stage]] lm: input 'cls' is a classification stage, which finds no regions to crop",
      "set input to an earlier detection stage or landmarks stage (there is none)"]),
    (DETECTOR + _landmarks(source=None),
     ["[[stage]] lm: a landmarks stage runs on crops: set input = an earlier detection stage or landmarks stage "
      "(det)"]),
    (DETECTOR + CLASSIFIER.replace('labels = ["a", "b"]', 'input = "det"'),
     ["[[stage]] cls: a classification stage runs on the whole frame: remove input = 'det'"]),
    (DETECTOR + _landmarks(body="[stage.landmarks]\ndims = 2"), ["[[stage]] lm: missing [stage.landmarks] count"]),
    (DETECTOR + _landmarks(body="[stage.landmarks]\ncount = 5\n[stage.track]\nscale = 2"),
     ["missing [stage.track] rotation_landmarks"]),
    (DETECTOR.replace("strides = [8, 16, 16, 16]", "offset = 0.5"), ["[[stage]] det: missing [stage.anchors] strides"]),
    (DETECTOR + _landmarks(body="[stage.landmarks]\ncount = 5\n[stage.crop]\nrotation_keypoints = [0, 6]"),
     ["[[stage]] lm: [stage.crop] rotation_keypoints = [0, 6], but the regions of stage det carry 6 point(s); "
      "give two of 0..5"]),
    (DETECTOR.replace("num_keypoints = 6", "min_score = 0.5") + _landmarks(),
     ["stage det carry 0 point(s)", "set num_keypoints in its [stage.decode]"]),
    (DETECTOR + _landmarks(body="[stage.landmarks]\ncount = 5\n[stage.track]\nrotation_landmarks = [0, 5]"),
     ["[[stage]] lm: [stage.track] rotation_landmarks = [0, 5] but [stage.landmarks] count = 5 (points 0..4)"]),
    (DETECTOR + _landmarks(body="[stage.landmarks]\ncount = 5\n[stage.anchors]\nstrides = [8]"),
     ["unknown section [stage.anchors] for a landmarks stage; valid: [stage.crop], [stage.budgets], [stage.resize], "
      "[stage.landmarks], [stage.track]"]),
])
def test_a_stage_is_checked_against_its_kind(pipeline_file, text, fragments):
    path = pipeline_file(text)
    with pytest.raises(UserError) as e:
        load_pipeline(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"pipeline {path}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_a_landmarks_stage_may_read_a_landmarks_stage(pipeline_file):
    spec = load_pipeline(pipeline_file(DETECTOR + _landmarks() + _landmarks("inner", source="lm")))
    assert [s.input for s in spec.stages] == ["frame", "det", "lm"] and spec.feeds("lm") == [spec.stages[2]]
    assert spec.stages[2].task is task_named("landmarks")


@pytest.mark.parametrize("text", [CLASSIFIER + _landmarks(source="cls"), DETECTOR + _landmarks(source=None)])
def test_cli_refuses_a_crop_stage_without_regions_before_any_frame(tmp_path, pipeline_file, text):
    """Issue 19: a landmarks stage on the whole frame died mid-run with an AttributeError and no report; a crop
    stage reading a classification stage passed validation and failed in stages.py."""
    path = pipeline_file(text)
    out = tmp_path / "out"
    proc = run_cli("simulate", "--pipeline", str(path), "--out", str(out), "--frames", "3", "--core", "host")
    assert proc.returncode == 2
    assert_user_error(proc, str(path), "[[stage]] lm", "set input")
    assert not out.exists()


class ToyMean(Task):
    """A kind a user might add: the mean of every output value; demo.mp4 writes it in a corner."""
    name = "toy_mean"
    sections = {"toy": {"gain": (float, lambda v: v > 0, "> 0")}}
    required = ("toy",)
    found_means = "frames whose mean output is above zero"

    def __init__(self):
        self.drawn, self.captions = 0, []

    def decoder(self, spec, model):
        gain = spec.sections["toy"]["gain"]
        return lambda raw: gain * float(np.mean([model.dequantize(r, i).mean() for i, r in enumerate(raw)]))

    def summary(self, mean: float) -> tuple[int, float, bool]:
        return int(mean > 0), mean, bool(np.isfinite(mean))

    def draw(self, frame, shown):
        self.drawn += 1
        frame[:8, :8] = 255
        return frame

    def stage_caption(self, name, shown, ran):
        self.captions.append(f"{name}: mean {shown:.3f}")
        return self.captions[-1]


@needs_models
def test_a_registered_toy_task_runs_through_a_pipeline(tmp_path, monkeypatch):
    """One new file's worth of code (a Task subclass, register_task): the pipeline file accepts the kind and its
    section, the simulation decodes, counts, reports, draws and captions through it."""
    from device_sim.profiles import load_profile
    from device_sim.simulate import apply_overrides, simulate

    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))     # the registration ends with the test
    toy = register_task(ToyMean())
    path = tmp_path / "toy.toml"
    path.write_text(f'name = "toy"\n[[stage]]\nname = "toy"\nmodel = "{MEDIAPIPE / "selfie_segmentation.tflite"}"\n'
                    'task = "toy_mean"\ninput_range = [0.0, 1.0]\n[stage.toy]\ngain = 2.0\n')
    assert load_pipeline(path).stages[0].task is toy
    profile = apply_overrides(load_profile("ar-glasses"), core="host")
    out = tmp_path / "out"
    code, report = simulate(None, profile, pipeline=str(path), out=out, source="photo", duration_s=None, max_frames=4,
                            max_speed=True, plots=False, progress=False, log=lambda *a: None)
    assert code in (0, 3)
    stage = json.loads((out / "report.json").read_text())["stages"][0]
    assert (stage["task"], stage["frames_run"], stage["found"]) == ("toy_mean", 4, toy.found_means)
    rows = list(csv.DictReader(open(out / "frames.csv")))
    means = [float(r["confidence"]) for r in rows]
    assert len(rows) == 4 and all(0 < m <= 2.0 for m in means)       # twice a mean probability
    assert [int(float(r["toy_found"])) for r in rows] == [1] * 4
    assert toy.drawn == 4 and toy.captions == [f"toy: mean {m:.3f}" for m in means]   # demo.mp4, frame by frame
    assert (out / "demo.mp4").is_file()


@needs_models
def test_a_bare_classifier_without_labels_is_refused_in_one_line():
    from device_sim.model import BareModel, DeployedModel

    with pytest.raises(UserError, match=r"labels is empty \(a classifier needs its class names\); check the options"):
        DeployedModel.load(MEDIAPIPE / "hand_landmark_lite.tflite", bare=BareModel(task="classification"))
    with pytest.raises(UserError, match="task 'pose' is not one of classification, raw, segmentation"):
        DeployedModel.load(MEDIAPIPE / "hand_landmark_lite.tflite", bare=BareModel(task="pose"))


@needs_models
def test_a_landmarks_stage_reads_the_face_landmarks(tmp_path):
    """A second landmarks stage crops around the face mesh's points (eye corners level) and finds the face
    on that crop too, frame after frame: landmarks give regions like a detector does."""
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    face = (load_pipeline("face").path).read_text()
    extra = textwrap.dedent(f"""
        [[stage]]
        name = "again"
        model = "{MEDIAPIPE / "face_landmark.tflite"}"
        task = "landmarks"
        input = "landmarks"
        input_range = [0.0, 1.0]
        [stage.crop]
        rotation_keypoints = [33, 263]
        scale = 1.5
        [stage.landmarks]
        count = 468
        scale = 192.0
        presence_output = 1
        presence_sigmoid = true
        """)
    path = tmp_path / "face2.toml"
    path.write_text(face.replace('model = "mediapipe/', f'model = "{MEDIAPIPE}/') + extra)
    spec = load_pipeline(path)
    pipe = Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])
    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    for i in range(0, 30, 10):
        out = pipe.process(cam.replay(i))
        first, again = pipe.view.found["landmarks"], pipe.view.found["again"]
        assert out.valid and len(first) == 1 and len(again) == 1 and out.columns["again_runs"] == 1, i
        assert np.abs(again[0].points - first[0].points).mean() < 5.0, i   # the same face, within a few pixels


@needs_models
def test_a_card_names_its_kind_and_the_kind_checks_the_card(tmp_path):
    """An export's card without `task` is a classifier; with one, the registry checks the name, and the kind
    checks the card (each refusal one line naming model.json)."""
    import shutil

    from contract.card import bare_card
    from contract.runtime import interpreter_class
    from device_sim.model import DeployedModel

    folder = tmp_path / "export"
    folder.mkdir()
    tflite = Path(shutil.copy(MEDIAPIPE / "hand_landmark_lite.tflite", folder / "model.tflite"))
    interp = interpreter_class()(model_path=str(tflite))
    card = bare_card(tflite, interp.get_input_details()[0], interp.get_output_details(), task="classification",
                     labels=[f"c{i}" for i in range(63)], value_range=(0.0, 1.0))   # the first output: 63 values
    del card["task"]

    def load(**edits):
        (folder / "model.json").write_text(json.dumps(card | edits))
        return DeployedModel.load(folder)

    model = load()
    assert model.task is task_named("classification")
    pred = model.postprocess(model.invoke(model.preprocess(np.full((240, 320, 3), 128, np.uint8))))
    assert 0 <= pred.label < 63 and 0 < pred.confidence <= 1 and pred.probs.sum() == pytest.approx(1.0, abs=1e-4)
    for edits in ({"labels": []}, {"labels": [], "task": "classification"}):
        with pytest.raises(UserError, match=r"model.json is malformed: labels is empty .*re-run `edgevit export`"):
            load(**edits)
    with pytest.raises(UserError, match=r"model.json is malformed: model.tflite outputs 63 scores but has 62 labels; "
                                        r"re-run `edgevit export`"):
        load(labels=card["labels"][:62])
    with pytest.raises(UserError, match=r"model.json: task 'pose' is not one of classification, raw"):
        load(task="pose")
    assert load(task="raw").task is task_named("raw")


@pytest.mark.parametrize("bad", [float("nan"), 1e12, -1e15])
def test_drawing_never_fails_on_a_point_it_cannot_draw(bad):
    """demo.mp4 drew int(NaN) (a ValueError) or a coordinate past int32 (a cv2.error) after the whole run, and no
    output was written: a non-finite object is not drawn, a huge coordinate is clipped."""
    from device_sim.decode.geometry import Roi
    from device_sim.tasks.landmarks import Landmarks

    frame = np.zeros((48, 64, 3), np.uint8)
    points = np.array([[10.0, 10.0], [bad, 20.0]])
    lm = Landmarks(Roi(20.0, 20.0, 16.0, 16.0, 0.0), points, 0.9, False)
    assert tasks.task_named("landmarks").draw(frame.copy(), [lm]).shape == frame.shape
    shown = [(np.array([5.0, 5.0, bad, 30.0]), points, 0.8)]
    drawn = tasks.task_named("detection").draw(frame.copy(), shown)
    assert drawn.any() == np.isfinite(bad)   # a huge box is drawn clipped; a NaN one not at all


def test_a_nan_presence_is_not_found():
    from device_sim.decode.geometry import Roi

    spec = type("Spec", (), {"sections": {"landmarks": {"presence_threshold": 0.5}}})()
    task = tasks.task_named("landmarks")
    roi = Roi(20.0, 20.0, 16.0, 16.0, 0.0)
    assert task.keep(spec, (np.zeros((3, 2)), float("nan")), roi, False) is None
    assert task.keep(spec, (np.zeros((3, 2)), 0.9), roi, False) is not None


@pytest.mark.skipif(not (MEDIAPIPE / "face_detection_short_range.tflite").is_file(), reason="no MediaPipe models: "
                    "run `make mediapipe-models` (make test does)")
@pytest.mark.parametrize("scale", [float("inf"), 1e38])
def test_a_quantization_scale_that_dequantizes_to_inf_is_refused(scale):
    """An int8 output with scale 1e38 dequantized to inf: a detection decode clipped it to a score of 1.0 (found,
    PASS); scale inf passed the load check, then the run failed writing its report."""
    import copy

    from contract.card import validate_card
    from device_sim.model import BareModel, DeployedModel

    tflite = MEDIAPIPE / "face_detection_short_range.tflite"
    card = copy.deepcopy(DeployedModel.load(tflite, bare=BareModel(task="raw")).card)
    validate_card(copy.deepcopy(card), tflite)
    card["outputs"][1]["quantization"] = {"scale": scale, "zero_point": 0}
    with pytest.raises(UserError, match=r"quantization must be null or \{scale in \(0, 1e30\]"):
        validate_card(card, tflite)
