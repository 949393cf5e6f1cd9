"""Pipeline files: a per-frame graph of models, described in TOML (device_sim/pipelines/*.toml, or a
user's path), validated on load like a device profile (unknown keys, wrong types and out-of-range values
are one-line errors naming the file and the key).

    name = "face"
    description = "..."

    [[stage]]                      # runs on the whole frame (input = "frame", the default)
    name = "detector"
    model = "mediapipe/face_detection_short_range.tflite"   # relative to this file, then to the models dir
    task = "detection"             # a registered task kind (device_sim.tasks): classification | raw | segmentation |
                                   # detection | landmarks; the kind owns its sections below and where it may run
    input_range = [-1.0, 1.0]      # what the model expects for pixels 0..255 (or mean/std; color; labels)
    resize = "letterbox"           # its input geometry: center_crop (default) | letterbox | stretch (contract.images),
                                   # or a [stage.resize] table: policy, interpolation_down/_up, pixel_centers,
                                   # border, pad_value
    every = 1                      # run on every Nth frame (in between, its last detections are reused)
    skip_while_tracking = true     # skip while the stage it feeds tracks max_crops objects (MediaPipe's rule)
    [stage.anchors]                # SSD anchors (device_sim.decode.ssd.AnchorSpec; input size from the model)
    [stage.decode]                 # boxes/scores outputs, scale, keypoints, min_score, nms_iou, max_detections

    [[stage]]                      # runs on crops around an earlier stage's regions (a detection or landmarks stage)
    name = "landmarks"
    input = "detector"
    max_crops = 1
    [stage.crop]                   # detection -> crop: scale, rotation_keypoints, target_angle (deg), shift_y
    [stage.landmarks]              # output, count, dims, scale, presence_output, presence_sigmoid, presence_threshold
    [stage.track]                  # landmarks -> next frame's crop: rotation_landmarks, target_angle, scale, shift_y,
                                   # extent (rotated | axis_aligned: the points' box on the crop's or frame's axes)
    [stage.resize]                 # the crop's geometry: border = "replicate" (MediaPipe's landmark crops) ...
    [stage.budgets]                # latency_ms (the stage's time per frame, percentile of the profile), memory_mb

Where a stage may run (the whole frame, or crops of an earlier stage that finds regions), its sections and
their required keys are its task kind's; a stage's name must not be one whose columns are the frame's own
(device_sim.frames.reserved_stage_names) nor share a column with another stage's (det_host -> det_host_ms is
stage det's host time). All of it is checked before the first frame.
A stage's model may be an edgevit export (its model.json rules) or any .tflite (the stage's input_range,
mean/std, color, labels and resize describe it, as the simulate flags do for a bare model).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import UserError
from contract.images import POLICIES, RESIZE_CHOICES, check_resize_policy, resize_preset
from device_sim.frames import STAGE_COLUMN_KINDS, reserved_stage_names, stage_column
from device_sim.profiles import builtin_names, named_toml
from device_sim.tasks import Task, registered_tasks, task_named, task_names
from device_sim.tasks.schema import ANGLE, BOOL, floats, ints, num, whole

__all__ = ["PipelineSpec", "StageSpec", "load_pipeline", "builtin_pipelines", "PIPELINE_DIR"]

PIPELINE_DIR = Path(__file__).with_name("pipelines")
FRAME = "frame"

_STAGE_KEYS = {   # key -> (type, check, meaning): the keys of every [[stage]], whatever its task
    "name": (str, lambda v: re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", v) is not None,
             "a name of letters, digits and _ (it names the stage's columns)"),
    "model": (str, bool, "a path to a .tflite or an export folder"),
    "task": (str, lambda v: v in task_names(), lambda: " | ".join(task_names())),
    "input": (str, bool, f"{FRAME!r} or the name of an earlier stage that finds regions"),
    "every": whole(1, 1000), "skip_while_tracking": BOOL, "max_crops": whole(1, 16),
    # bounded: a model takes values within +-1e6 (1e38 overflowed float32 while quantizing the input)
    "input_range": floats(2, lambda x: abs(x) <= 1e6, "within -1e6..1e6"),
    "mean": floats(3, lambda x: abs(x) <= 1e6, "within -1e6..1e6"),
    "std": floats(3, lambda x: 1e-6 <= x <= 1e6, "1e-6..1e6"),
    "color": (str, lambda v: v.upper() in ("RGB", "BGR"), "RGB or BGR"),
    "resize": (str, lambda v: v in POLICIES, " | ".join(POLICIES) + " (or a [stage.resize] table)"),
    "labels": (list, lambda v: all(isinstance(x, str) for x in v), "a list of class names")}
_SECTIONS = {   # the sections of every stage; a task kind adds its own (Task.sections)
    "crop": {"scale": num(lambda v: 1e-3 <= v <= 1e3, "1e-3..1e3 (times the region)"),
             "rotation_keypoints": ints(2), "target_angle": ANGLE,
             "shift_y": num(lambda v: -100 <= v <= 100, "-100..100 (region heights)")},   # a region -> its crop
    "budgets": {"latency_ms": num(lambda v: v >= 0, ">= 0"), "memory_mb": num(lambda v: v >= 0, ">= 0")},
    "resize": {**{k: (str, lambda v, c=c: v in c, " | ".join(c)) for k, c in RESIZE_CHOICES.items()},
               "pad_value": num(lambda v: 0 <= v <= 255, "a pixel value 0..255")},   # a bare model's input geometry
}


@dataclass(frozen=True)
class StageSpec:
    name: str
    model: Path
    task: Task                     # its registered kind (device_sim.tasks)
    input: str = FRAME
    every: int = 1
    skip_while_tracking: bool = False
    max_crops: int = 1
    describe: dict = field(default_factory=dict)   # input_range, mean, std, color, labels, resize (a bare .tflite)
    sections: dict = field(default_factory=dict)   # the task's own sections: name -> {key: value}
    crop: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=dict)

    @property
    def on_crops(self) -> bool:
        return self.input != FRAME

    @property
    def tracks(self) -> bool:
        """Its crops follow what it found on the previous frame (a landmarks stage with [stage.track])."""
        return self.task.tracks(self)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    path: Path
    stages: tuple[StageSpec, ...]

    def feeds(self, stage: str) -> list[StageSpec]:
        """The crop stages that take `stage`'s regions."""
        return [s for s in self.stages if s.input == stage]

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)


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
        meaning = meaning() if callable(meaning) else meaning
        shown = str(raw).lower() if isinstance(raw, bool) else repr(raw)   # as TOML writes it
        if not isinstance(raw, kind) or (isinstance(raw, bool) and kind is not bool):
            want = {int: "a whole number", float: "a number", bool: "true or false", list: "a list",
                    str: "a string"}.get(kind, kind.__name__)
            raise UserError(f"pipeline {path}: {where}{key} = {shown} is not {want}"
                            + (f" ({meaning})" if meaning != want else ""))
        if not check(raw):
            raise UserError(f"pipeline {path}: {where}{key} = {shown} is not {meaning}")
        out[key] = raw
    return out


def _model_path(path: Path, where: str, model: str) -> Path:
    from contract.card import card_candidate
    from contract.outputs import recover_input
    from device_sim.sources.photo import models_dir

    given = Path(model)
    for candidate in (given if given.is_absolute() else path.parent / given, models_dir() / given):
        recover_input(candidate, what="simulation")   # an export a killed command left half replaced: back first
        if candidate.exists():
            if not (candidate.suffix == ".tflite" and candidate.is_file() or card_candidate(candidate).is_file()):
                raise UserError(f"pipeline {path}: {where}model {model!r} ({candidate}) is neither a .tflite nor an "
                                f"export folder or model.json made by `edgevit export`; point it at one")
            return candidate
    raise UserError(f"pipeline {path}: {where}model {model!r} not found next to the file or in {models_dir()} "
                    "(the MediaPipe models come from `make mediapipe-models`)")


def _sections(path: Path, where: str, task: Task, given: dict) -> dict:
    """The stage's sections checked against its task's schema and the common ones; what is missing named."""
    schema = _SECTIONS | task.sections
    for key in given:
        if key not in schema:
            raise UserError(f"pipeline {path}: {where}unknown section [stage.{key}] for a {task.name} stage; valid: "
                            f"{', '.join('[stage.' + s + ']' for s in schema)}")
    missing = [f"[stage.{s}]" for s in task.required if s not in given]
    missing += [f"[stage.{s}] {k}" for s, keys in task.keys_needed.items() if s in given
                for k in keys if k not in given[s]]
    if missing:
        raise UserError(f"pipeline {path}: {where}missing {', '.join(missing)}")
    return {k: _check(path, f"{where}[stage.{k}] ", v, schema[k]) for k, v in given.items()}


def _check_input(path: Path, where: str, task: Task, src: str, earlier: dict) -> None:
    """Where the stage runs: the whole frame, or crops of an earlier stage whose kind finds regions."""
    readable = [t.name for t in registered_tasks() if t.gives_regions]
    kinds = " stage or ".join(readable)
    can_read = ", ".join(n for n, s in earlier.items() if s.task.gives_regions) or "there is none"
    if src == FRAME and not task.on_frame:
        raise UserError(f"pipeline {path}: {where}a {task.name} stage runs on crops: set input = an earlier "
                        f"{kinds} stage ({can_read})")
    if src != FRAME and not task.on_crops:
        raise UserError(f"pipeline {path}: {where}a {task.name} stage runs on the whole frame: remove "
                        f"input = {src!r} (or set it to 'frame')")
    if src != FRAME and src not in earlier:
        raise UserError(f"pipeline {path}: {where}input {src!r} must be 'frame' or an earlier {kinds} stage "
                        f"({can_read})")
    if src != FRAME and not earlier[src].task.gives_regions:
        raise UserError(f"pipeline {path}: {where}input {src!r} is a {earlier[src].task.name} stage, which finds "
                        f"no regions to crop: set input to an earlier {kinds} stage ({can_read})")


def _check_crop(path: Path, where: str, crop: dict, source: StageSpec) -> None:
    """The reader's crop turns the source's points a -> b level: they must exist."""
    rotation, points = crop.get("rotation_keypoints", [0, 1]), source.task.region_points(source)
    if max(rotation) >= points:
        raise UserError(f"pipeline {path}: {where}[stage.crop] rotation_keypoints = {list(rotation)}, but the regions "
                        f"of stage {source.name} carry {points} point(s); "
                        + (f"give two of 0..{points - 1}" if points else "set num_keypoints in its [stage.decode]"))


def _check_name(path: Path, where: str, name: str, earlier: dict) -> None:
    """A stage's name names its columns: it must not be another stage's, the frame's own, or share a column
    with an earlier stage (det_host -> det_host_ms, which is also stage det's host time)."""
    if name in earlier:
        raise UserError(f"pipeline {path}: two stages are named {name!r}")
    if name in reserved_stage_names():
        raise UserError(f"pipeline {path}: {where}name {name!r} is reserved: its columns would overwrite the "
                        f"frame's own ({', '.join(reserved_stage_names())}); rename the stage")
    if name == FRAME:
        raise UserError(f"pipeline {path}: {where}name {FRAME!r} is reserved: input = {FRAME!r} means the whole "
                        "frame; rename the stage")
    mine = {stage_column(name, kind) for kind in STAGE_COLUMN_KINDS}
    for other in earlier:
        shared = mine & {stage_column(other, kind) for kind in STAGE_COLUMN_KINDS}
        if shared:
            raise UserError(f"pipeline {path}: {where}name {name!r} and stage {other!r} would both write the column "
                            f"{min(shared)}; rename one of them")


def _stage(path: Path, i: int, table: dict, earlier: dict) -> StageSpec:
    if not isinstance(table, dict):
        raise UserError(f"pipeline {path}: [[stage]] {i + 1} must be a table")
    given = {k: v for k, v in table.items() if isinstance(v, dict)}
    where = f"[[stage]] {table.get('name', i + 1)}: "
    top = _check(path, where, {k: v for k, v in table.items() if k not in given}, _STAGE_KEYS)
    missing = [k for k in ("name", "model", "task") if k not in top]
    if missing:
        raise UserError(f"pipeline {path}: {where}missing {', '.join(missing)}")
    task = task_named(top["task"])
    _check_name(path, where, top["name"], earlier)
    parts = _sections(path, where, task, given)
    src = top.get("input", FRAME)
    _check_input(path, where, task, src, earlier)
    if src != FRAME:
        _check_crop(path, where, parts.get("crop", {}), earlier[src])
    for key, given_ in (("max_crops", "max_crops" in top), ("[stage.crop]", "crop" in parts)):
        if given_ and src == FRAME:
            raise UserError(f"pipeline {path}: {where}{key} applies to a stage on crops (input = an earlier stage); "
                            "remove it from this whole-frame stage")
    for key in ("every", "skip_while_tracking"):
        if key in top and src != FRAME:
            raise UserError(f"pipeline {path}: {where}{key} applies to a whole-frame stage (a stage on crops runs on "
                            f"every crop that {src} gives); remove it from this stage")
    if "mean" in top and "input_range" in top or ("mean" in top) != ("std" in top):
        raise UserError(f"pipeline {path}: {where}give input_range, or mean and std together")
    if "labels" in top and not task.uses_labels:
        raise UserError(f"pipeline {path}: {where}labels names a classifier's classes; a {task.name} stage does "
                        "not read them: remove it")
    describe = {k: top.pop(k) for k in ("input_range", "mean", "std", "color", "labels") if k in top}
    resize = resize_preset(top.pop("resize")) if "resize" in top else parts.pop("resize", None)
    if resize is not None:
        try:   # the model loads it for the whole frame too (DeployedModel.resize), so both forms must hold
            check_resize_policy(resize)
            check_resize_policy(resize, crop=src != FRAME)
        except ValueError as e:
            raise UserError(f"pipeline {path}: {where}{str(e).replace('input.resize', '[stage.resize]')}") from None
        describe["resize"] = resize
    common = {k: parts.pop(k) for k in _SECTIONS if k in parts}
    spec = StageSpec(name=top["name"], model=_model_path(path, where, top["model"]), task=task, input=src,
                     every=top.get("every", 1), skip_while_tracking=top.get("skip_while_tracking", False),
                     max_crops=top.get("max_crops", 1), describe=describe, sections=parts, **common)
    problem = task.check_stage(spec)
    if problem:
        raise UserError(f"pipeline {path}: {where}{problem}")
    return spec


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
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"pipeline {path}: {key} = {data[key]!r} is not a string; quote it")
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
        if s.skip_while_tracking and not any(f.tracks for f in spec.feeds(s.name)):
            raise UserError(f"pipeline {path}: stage {s.name} has skip_while_tracking but no stage with "
                            f"input = {s.name!r} has a [stage.track] section to track with")
    return spec
