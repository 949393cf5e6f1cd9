"""Pipeline files: a per-frame graph of models, described in TOML (device_sim/pipelines/*.toml, or a
user's path), validated on load like a device profile (unknown keys, wrong types and out-of-range values
are one-line errors naming the file and the key).

    name = "face"
    description = "..."

    [[stage]]                      # runs on the whole frame (input = "frame", the default)
    name = "detector"
    model = "mediapipe/face_detection_short_range.tflite"   # relative to this file, then to the models dir
    task = "detection"             # classification | raw | segmentation | detection | landmarks
    input_range = [-1.0, 1.0]      # what the model expects for pixels 0..255 (or mean/std; color; labels)
    every = 1                      # run on every Nth frame (in between, its last detections are reused)
    skip_while_tracking = true     # skip while the stage it feeds tracks max_crops objects (MediaPipe's rule)
    [stage.anchors]                # SSD anchors (device_sim.decode.ssd.AnchorSpec; input size from the model)
    [stage.decode]                 # boxes/scores outputs, scale, keypoints, min_score, nms_iou, max_detections

    [[stage]]                      # runs on crops around another stage's detections
    name = "landmarks"
    input = "detector"
    max_crops = 1
    [stage.crop]                   # detection -> crop: scale, rotation_keypoints, target_angle (deg), shift_y
    [stage.landmarks]              # output, count, dims, scale, presence_output, presence_sigmoid, presence_threshold
    [stage.track]                  # landmarks -> next frame's crop: rotation_landmarks, target_angle, scale, shift_y
    [stage.budgets]                # latency_ms (the stage's time per frame, percentile of the profile), memory_mb

A stage's model may be an edgevit export (its model.json rules) or any .tflite (the stage's input_range,
mean/std, color and labels describe it, as the simulate flags do for a bare model).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import UserError
from device_sim.frames import reserved_stage_names
from device_sim.profiles import builtin_names, named_toml

__all__ = ["PipelineSpec", "StageSpec", "load_pipeline", "builtin_pipelines", "PIPELINE_DIR", "STAGE_TASKS"]

PIPELINE_DIR = Path(__file__).with_name("pipelines")
STAGE_TASKS = ("classification", "raw", "segmentation", "detection", "landmarks")
FRAME = "frame"


def _num(check, meaning):
    return (float, lambda v: math.isfinite(v) and check(v), meaning)


def _ints(n):
    return (list, lambda v: len(v) == n and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v),
            f"{n} whole numbers >= 0")


def _floats(n, check=lambda v: True):
    return (list, lambda v: len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                and math.isfinite(x) and check(x) for x in v), f"{n} numbers")


_INT = lambda lo, hi: (int, lambda v: lo <= v <= hi, f"{lo}..{hi}")  # noqa: E731
_BOOL = (bool, lambda v: True, "true or false")
_OUT = _INT(0, 63)
_SECTIONS = {   # section -> key -> (type, check, meaning)
    "stage": {"name": (str, lambda v: re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", v) is not None,
                       "a name of letters, digits and _ (it names the stage's columns)"),
              "model": (str, bool, "a path to a .tflite or an export folder"),
              "task": (str, lambda v: v in STAGE_TASKS, " | ".join(STAGE_TASKS)),
              "input": (str, bool, f"{FRAME!r} or the name of an earlier detection stage"),
              "every": _INT(1, 1000), "skip_while_tracking": _BOOL, "max_crops": _INT(1, 16),
              "input_range": _floats(2), "mean": _floats(3), "std": _floats(3, lambda x: x > 0),
              "color": (str, lambda v: v.upper() in ("RGB", "BGR"), "RGB or BGR"),
              "labels": (list, lambda v: all(isinstance(x, str) for x in v), "a list of class names")},
    "anchors": {"strides": (list, lambda v: v and all(isinstance(x, int) and x > 0 for x in v), "whole numbers > 0"),
                "min_scale": _num(lambda v: v > 0, "> 0"), "max_scale": _num(lambda v: v > 0, "> 0"),
                "offset": _num(lambda v: 0 <= v <= 1, "0..1"),
                "aspect_ratios": (list, lambda v: v and all(isinstance(x, (int, float)) and x > 0 for x in v),
                                  "numbers > 0"),
                "interpolated_scale_aspect_ratio": _num(lambda v: v >= 0, ">= 0 (0: none)"),
                "fixed_anchor_size": _BOOL},
    "decode": {"boxes_output": _OUT, "scores_output": _OUT, "scale": _num(lambda v: v > 0, "> 0"),
               "num_keypoints": _INT(0, 64), "box_offset": _INT(0, 1024), "keypoint_offset": _INT(0, 1024),
               "min_score": _num(lambda v: 0 <= v <= 1, "0..1"), "score_clip": _num(lambda v: v > 0, "> 0"),
               "sigmoid": _BOOL, "nms_iou": _num(lambda v: 0 < v <= 1, "0 < x <= 1"),
               "max_detections": _INT(1, 100)},
    "crop": {"scale": _num(lambda v: v > 0, "> 0"), "rotation_keypoints": _ints(2),
             "target_angle": _num(lambda v: abs(v) <= 360, "degrees, -360..360"),
             "shift_y": _num(lambda v: True, "a number")},
    "landmarks": {"output": _OUT, "count": _INT(1, 10000), "dims": _INT(2, 3), "scale": _num(lambda v: v > 0, "> 0"),
                  "presence_output": _OUT, "presence_sigmoid": _BOOL,
                  "presence_threshold": _num(lambda v: 0 <= v <= 1, "0..1")},
    "track": {"rotation_landmarks": _ints(2), "target_angle": _num(lambda v: abs(v) <= 360, "degrees, -360..360"),
              "scale": _num(lambda v: v > 0, "> 0"), "shift_y": _num(lambda v: True, "a number")},
    "budgets": {"latency_ms": _num(lambda v: v >= 0, ">= 0"), "memory_mb": _num(lambda v: v >= 0, ">= 0")},
}
_REQUIRED = {"detection": ("anchors", "decode"), "landmarks": ("landmarks",)}


@dataclass(frozen=True)
class StageSpec:
    name: str
    model: Path
    task: str
    input: str = FRAME
    every: int = 1
    skip_while_tracking: bool = False
    max_crops: int = 1
    describe: dict = field(default_factory=dict)   # input_range, mean, std, color, labels (a bare .tflite)
    anchors: dict = field(default_factory=dict)
    decode: dict = field(default_factory=dict)
    crop: dict = field(default_factory=dict)
    landmarks: dict = field(default_factory=dict)
    track: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=dict)

    @property
    def on_crops(self) -> bool:
        return self.input != FRAME


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    path: Path
    stages: tuple[StageSpec, ...]

    def feeds(self, stage: str) -> list[StageSpec]:
        """The crop stages that take `stage`'s detections."""
        return [s for s in self.stages if s.input == stage]


def builtin_pipelines() -> list[str]:
    return builtin_names(PIPELINE_DIR)


def _check(path: Path, where: str, table: dict, schema: dict) -> dict:
    out = {}
    for key, raw in table.items():
        if key not in schema:
            raise UserError(f"pipeline {path}: unknown key {where}{key!r}; valid: {', '.join(schema)}")
        kind, check, meaning = schema[key]
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or (isinstance(raw, bool) and kind is not bool) or not check(raw):
            raise UserError(f"pipeline {path}: {where}{key} = {raw!r} is not {meaning}")
        out[key] = raw
    return out


def _model_path(path: Path, where: str, model: str) -> Path:
    from device_sim.sources.photo import models_dir

    given = Path(model)
    for candidate in (given if given.is_absolute() else path.parent / given, models_dir() / given):
        if candidate.exists():
            return candidate
    raise UserError(f"pipeline {path}: {where}model {model!r} not found next to the file or in {models_dir()} "
                    "(the MediaPipe models come from `make mediapipe-models`)")


def _stage(path: Path, i: int, table: dict, earlier: dict) -> StageSpec:
    if not isinstance(table, dict):
        raise UserError(f"pipeline {path}: [[stage]] {i + 1} must be a table")
    sections = {k: v for k, v in table.items() if isinstance(v, dict)}
    where = f"[[stage]] {table.get('name', i + 1)}: "
    for key in sections:
        if key not in _SECTIONS or key == "stage":
            raise UserError(f"pipeline {path}: {where}unknown section [stage.{key}]; valid: "
                            f"{', '.join('[stage.' + s + ']' for s in _SECTIONS if s != 'stage')}")
    top = _check(path, where, {k: v for k, v in table.items() if k not in sections}, _SECTIONS["stage"])
    missing = [k for k in ("name", "model", "task") if k not in top]
    missing += [f"[stage.{s}]" for s in _REQUIRED.get(top.get("task"), ()) if s not in sections]
    if missing:
        raise UserError(f"pipeline {path}: {where}missing {', '.join(missing)}")
    if top["name"] in earlier:
        raise UserError(f"pipeline {path}: two stages are named {top['name']!r}")
    if top["name"] in reserved_stage_names():
        raise UserError(f"pipeline {path}: {where}name {top['name']!r} is reserved: its columns would overwrite the "
                        f"frame's own ({', '.join(reserved_stage_names())}); rename the stage")
    parts = {k: _check(path, f"{where}[stage.{k}] ", v, _SECTIONS[k]) for k, v in sections.items()}
    src = top.get("input", FRAME)
    if src != FRAME and (src not in earlier or earlier[src].task != "detection"):
        raise UserError(f"pipeline {path}: {where}input {src!r} must be 'frame' or an earlier detection stage "
                        f"({', '.join(n for n, s in earlier.items() if s.task == 'detection') or 'there is none'})")
    if "mean" in top and "input_range" in top or ("mean" in top) != ("std" in top):
        raise UserError(f"pipeline {path}: {where}give input_range, or mean and std together")
    describe = {k: top.pop(k) for k in ("input_range", "mean", "std", "color", "labels") if k in top}
    return StageSpec(name=top["name"], model=_model_path(path, where, top["model"]), task=top["task"], input=src,
                     every=top.get("every", 1), skip_while_tracking=top.get("skip_while_tracking", False),
                     max_crops=top.get("max_crops", 1), describe=describe, **parts)


def load_pipeline(spec: str | Path) -> PipelineSpec:
    """A built-in pipeline name (face, hand, selfie) or a path to a .toml file."""
    path = named_toml(spec, PIPELINE_DIR, "pipeline")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"pipeline {path} is not valid TOML ({e})") from None
    unknown = set(data) - {"name", "description", "stage"}
    if unknown:
        raise UserError(f"pipeline {path}: unknown key {sorted(unknown)[0]!r}; valid: name, description, [[stage]]")
    tables = data.get("stage")
    if not isinstance(tables, list) or not tables:
        raise UserError(f"pipeline {path}: no [[stage]]; a pipeline needs at least one")
    stages: dict[str, StageSpec] = {}
    for i, table in enumerate(tables):
        s = _stage(path, i, table, stages)
        stages[s.name] = s
    spec = PipelineSpec(str(data.get("name") or path.stem), str(data.get("description", "")), path,
                        tuple(stages.values()))
    for s in spec.stages:
        if s.skip_while_tracking and not any(f.track for f in spec.feeds(s.name)):
            raise UserError(f"pipeline {path}: stage {s.name} has skip_while_tracking but no stage with "
                            f"input = {s.name!r} has a [stage.track] section to track with")
        if s.track and not s.on_crops:
            raise UserError(f"pipeline {path}: stage {s.name} has [stage.track] but runs on the whole frame; "
                            "tracking needs input = a detection stage")
    return spec
