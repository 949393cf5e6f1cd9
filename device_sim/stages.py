"""A pipeline at run time: the stages of a pipeline file (device_sim.pipelines) as loaded models, run on
each frame in file order. What a stage's outputs mean, how they are decoded, drawn and captioned is its
task kind's (device_sim.tasks); this file only schedules the stages.

- A whole-frame stage runs on every `every`-th frame (in between, a kind that `holds`, such as detection,
  keeps its last result). A stage with `skip_while_tracking` is skipped while every crop stage it feeds
  tracks max_crops objects (MediaPipe's rule: look for a new hand only while fewer than max hands are tracked).
- A crop stage (input = an earlier stage whose kind finds regions) runs once per crop: first the crops it
  tracked on the previous frame, then one around each region of its input stage that does not overlap a
  tracked crop (IoU of their bounds > 0.5), up to max_crops. What its kind keeps of a crop (landmarks: a
  presence score that reaches the threshold) may become the next frame's crop ([stage.track]).
Every invocation spends the device's time through device_sim.clock.run_timed with that stage's own
DeviceTiming (its model's projection), so each stage is timed, and the frame is their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from device_sim.clock import StageTimes, run_timed
from device_sim.decode.geometry import Roi, crop_matrix, roi_to_frame
from device_sim.device import DeviceTiming
from device_sim.frames import stage_column
from device_sim.work import Outcome

__all__ = ["Stage", "Pipeline", "load_stage_models", "UNTIMED", "TRACK_IOU"]

TRACK_IOU = 0.5          # a new region overlapping a tracked crop by more than this is the same object
UNTIMED = DeviceTiming("host", "host, untimed", None, 1.0, 0.0)   # spends no device time (replays for demo.mp4)


@dataclass
class View:
    """What one frame's stages found, in frame pixels (drawn into demo.mp4 by each stage's kind)."""
    ran: dict = field(default_factory=dict)          # stage -> invocations
    found: dict = field(default_factory=dict)        # stage -> its kind's `shown` result (crop stages: kept list)


class Stage:
    def __init__(self, spec, model, timing: DeviceTiming):
        self.spec, self.model, self.timing, self.name, self.task = spec, model, timing, spec.name, spec.task
        self.decode = spec.task.decoder(spec, model)
        self.raw_finite = True   # the last invocation's raw outputs (a detector's NaN scores decode to nothing)

    def finish(self, raw):
        """The post-processing of one invocation: its raw float outputs checked (raw_finite), then decoded."""
        self.raw_finite = all(bool(np.isfinite(o).all()) for o in raw if np.issubdtype(np.asarray(o).dtype,
                                                                                       np.floating))
        return self.decode(raw)

    def run(self, frame: np.ndarray, roi: Roi | None, timing: DeviceTiming):
        """(decoded result, StageTimes) of one invocation on the whole frame or on the crop `roi` (a fitted one:
        see `fit`)."""
        prepare = (lambda: self.model.preprocess(frame)) if roi is None else (lambda: self._crop(frame, roi))
        return run_timed(self.model, timing, prepare, self.finish)

    def fit(self, roi: Roi) -> Roi:
        """The ROI the model's crop covers: fitted to its input's aspect ratio by its input geometry (MediaPipe's
        ImageToTensorCalculator pads a ROI to the tensor's aspect when keep_aspect_ratio is set)."""
        from contract.images import fit_region

        m = self.model
        width, height = fit_region(m.crop_resize, roi.width, roi.height, m.width, m.height)
        return Roi(roi.x, roi.y, width, height, roi.rotation)

    def _crop(self, frame: np.ndarray, roi: Roi) -> np.ndarray:
        from contract.images import border_args, interpolation_flag

        m, policy = self.model, self.model.crop_resize
        matrix = crop_matrix(roi, m.width, m.height, half_pixel=policy["pixel_centers"] == "half_pixel")
        shrinking = roi.width * roi.height > m.width * m.height
        crop = cv2.warpAffine(frame, matrix, (m.width, m.height), flags=interpolation_flag(policy, shrinking),
                              **border_args(policy))
        return m.to_input((cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if m.rgb else crop)[None])


def load_stage_models(spec, threads: int = 1) -> list:
    """Each stage's DeployedModel: an export's card, or a bare .tflite described by the stage."""
    from contract.card import BARE_OPTIONS
    from contract.errors import UserError

    models = []
    for st in spec.stages:
        where = f"pipeline {spec.path}: stage {st.name}"
        try:
            model = _stage_model(st, where, threads)
            st.task.decoder(st, model)   # its decoding keys against the model's outputs, before any frame
        except UserError as e:   # what is wrong with the model, said with the file and stage that name it
            msg = str(e).replace(BARE_OPTIONS, "(the stage's task, labels, input_range, mean/std, color and resize)")
            raise UserError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        models.append(model)
    return models


def _stage_model(st, where: str, threads: int):
    from contract.card import is_bare_tflite, read_card, resolve_card
    from contract.errors import UserError
    from device_sim.model import BareModel, DeployedModel

    if is_bare_tflite(st.model):
        d = st.describe
        return DeployedModel.load(st.model, threads=threads, bare=BareModel(
            task=st.task.name, labels=tuple(d.get("labels", ())), value_range=tuple(d.get("input_range", (0.0, 255.0))),
            mean=tuple(d["mean"]) if "mean" in d else None, std=tuple(d["std"]) if "std" in d else None,
            color=d.get("color", "RGB"), resize=d.get("resize")))
    try:
        resolve_card(st.model)
    except UserError:   # its message names --model; a pipeline's stage says `model =`
        raise UserError(f"{where}: model {st.model} is not a .tflite, an export folder or its model.json; point "
                        "model at one (e.g. artifacts/edgevit_xs-digits/int8, made by `edgevit export`)") from None
    if st.describe:
        read_card(st.model)   # a card that is no valid JSON says so first
        raise UserError(f"{where}: {st.model} has a model card, which says how to feed it; remove "
                        f"{', '.join(st.describe)} (they describe a bare .tflite only)")
    model = DeployedModel.load(st.model, threads=threads)
    if model.task is not st.task:
        raise UserError(f"{where}: task {st.task.name!r}, but its model card says {model.task.name!r}")
    return model


class Pipeline:
    """The Work (device_sim.work) of a pipeline file: process(frame) -> Outcome with per-stage columns."""

    def __init__(self, spec, stages: list[Stage]):
        self.spec, self.stages = spec, stages
        self._models = {st.name: st.model for st in stages}
        self.labels: list[str] = []
        self.name, self.format = spec.name, "pipeline"
        self.tflites = [st.model.tflite for st in stages]
        self.size_mb = sum(st.model.size_mb for st in stages)
        self.timing = stages[0].timing      # how the device's time is obtained (every stage shares the profile)
        self.reset()

    # -- reports ----------------------------------------------------------------------------------
    def model_report(self) -> dict:
        return {"name": self.name, "format": self.format, "file": str(self.spec.path),
                "description": self.spec.description, "size_mb": self.size_mb,
                "stages": [{"name": st.name, "task": st.task.name, "input": st.spec.input, "path": str(st.model.tflite),
                            "format": st.model.card.get("format"), "sha256": st.model.card.get("sha256"),
                            "size_mb": st.model.size_mb, "init_ms": st.model.init_seconds * 1e3,
                            "input_tensor": {k: st.model.input_spec.get(k) for k in ("shape", "dtype", "value_range")}}
                           for st in self.stages]}

    def device_report(self, recs) -> dict:
        """The first stage's kind and label (all stages share the profile), each stage's timing, and the frames
        whose host inference (all invocations) took longer than the device's projected inference."""
        slower = 0
        if all(st.timing.inference_ms is not None for st in self.stages):
            slower = sum(r.inference_host_ms > sum(r.columns[stage_column(st.name, "runs")] * st.timing.inference_ms
                                                   for st in self.stages) for r in recs)
        return {"kind": self.timing.kind, "label": self.timing.label, "host_slower_frames": slower,
                "stages": {st.name: st.timing.as_dict() for st in self.stages}}

    def stage_report(self, recs) -> list[dict]:
        """Per stage: on how many frames it ran, how often, what it found, its device and host time per frame
        (frames it ran on), and for a detector that feeds a tracker, how often it ran once something was tracked."""
        from device_sim.stats import summarize

        out = []
        for st in self.stages:
            runs = np.array([r.columns[stage_column(st.name, "runs")] for r in recs])
            ran = [r for r, n in zip(recs, runs) if n > 0]
            row = {"name": st.name, "task": st.task.name, "frames_run": len(ran), "run_ratio": float(np.mean(runs > 0)),
                   "invocations": int(runs.sum()),
                   "bad_regions": int(sum(_col(r, st.name, "bad_regions") for r in recs)),
                   "frames_found": int(sum(_col(r, st.name, "found") > 0 for r in recs)), "found": st.task.found_means,
                   "latency_ms": summarize(_col(r, st.name, "ms") for r in ran) if ran else None,
                   "latency_host_ms": summarize(_col(r, st.name, "host_ms") for r in ran) if ran else None}
            trackers = [f.name for f in self.spec.feeds(st.name) if f.tracks]
            if trackers:
                found = [i for i, r in enumerate(recs) if any(_col(r, t, "found") > 0 for t in trackers)]
                after = runs[found[0] + 1:] if found else np.array([])
                row["run_ratio_once_tracking"] = float(np.mean(after > 0)) if len(after) else None
                row["frames_after_first_found"] = len(after)
            out.append(row)
        return out

    def reset(self) -> None:
        self.count = 0
        self.held: dict[str, object] = {}          # a stage's last result (a kind that holds: between runs too)
        self.tracked: dict[str, list[Roi]] = {}    # a crop stage's crops for the next frame
        self.view = View()
        self.replaying = False

    # -- per frame ------------------------------------------------------------------------------
    def process(self, frame: np.ndarray) -> Outcome:
        total, columns, self.view, valid = StageTimes(), {}, View(), True
        confidence = 0.0
        for st in self.stages:
            times, runs, found, conf, ok, bad = self._stage(st, frame)
            total.add(times)
            valid &= ok and not bad
            confidence = conf
            values = {"ms": times.device_ms, "host_ms": times.host_ms, "runs": runs, "found": found,
                      "bad_regions": bad}
            columns |= {stage_column(st.name, kind): value for kind, value in values.items()}
        self.count += 1
        return Outcome(total, -1, confidence, valid, columns)

    def _timing(self, st: Stage) -> DeviceTiming:
        return UNTIMED if self.replaying else st.timing

    def _stage(self, st: Stage, frame: np.ndarray):
        """(StageTimes, invocations, objects found, confidence, outputs finite) of one stage on this frame."""
        if st.spec.on_crops:
            return self._crops(st, frame)
        times, runs = StageTimes(), 0
        if self._should_run(st):
            self.held[st.name], times = st.run(frame, None, self._timing(st))
            runs = 1
        elif not st.task.holds:
            self.held.pop(st.name, None)
        self.view.ran[st.name] = runs
        result = self.held.get(st.name)
        raw_ok = st.raw_finite or not runs   # what it ran on this frame gave finite outputs
        if result is None:
            return times, runs, 0, 0.0, raw_ok, 0
        h, w = frame.shape[:2]
        self.view.found[st.name] = st.task.shown(result, st.model.placement(w, h))
        found, confidence, ok = st.task.summary(result)
        return times, runs, found, confidence, ok and raw_ok, 0

    def _should_run(self, st: Stage) -> bool:
        if self.count % st.spec.every:
            return False
        trackers = [f for f in self.spec.feeds(st.name) if f.tracks]
        if st.spec.skip_while_tracking and all(len(self.tracked.get(f.name, [])) >= f.max_crops for f in trackers):
            self.held.pop(st.name, None)    # nothing new to look for; stale results must not come back later
            return False
        return True

    def _crops(self, st: Stage, frame: np.ndarray):
        h, w = frame.shape[:2]
        rois = [(r, True) for r in self.tracked.get(st.name, [])]
        source = self.spec.stage(st.spec.input)
        held = self.held.get(source.name)
        place = self._models[source.name].placement(w, h)
        for roi in source.task.regions(held, st.spec.crop, place) if held is not None else ():
            if all(_overlap(roi, r) <= TRACK_IOU for r, _ in rois):
                rois.append((roi, False))
        # a region the stage before found that no crop can be taken of (or wholly off the frame) is a wrong output
        # (a decode's scale off by the input size, a [stage.crop] far too large): counted, and the frame is invalid
        bad = sum(not t and not _usable(r, w, h) for r, t in rois)
        rois = [(r, t) for r, t in rois if _usable(r, w, h)]
        times, kept, ok = StageTimes(), [], True
        for roi, tracked in rois[: st.spec.max_crops]:
            roi = st.fit(roi)
            result, t = st.run(frame, roi, self._timing(st))
            times.add(t)
            ok &= st.task.finite(result) and st.raw_finite and st.task.plausible(st.spec, result)
            if (item := st.task.keep(st.spec, result, roi, tracked)) is not None:
                kept.append(item)
        self.held[st.name] = self.view.found[st.name] = kept
        self.view.ran[st.name] = min(len(rois), st.spec.max_crops)
        self.tracked[st.name], runaway = _next_crops(st.task.track(st.spec, kept), w, h)
        found, confidence, _ = st.task.summary(kept)
        return times, self.view.ran[st.name], found, confidence, ok, bad + runaway

    # -- demo.mp4 ---------------------------------------------------------------------------------
    def draw(self, frame: np.ndarray, rec) -> tuple[np.ndarray, str]:
        """Runs this frame again, untimed (the replay follows the run's decisions: same frames, same order),
        and draws what each stage found."""
        self.replaying = True
        try:
            self.process(frame)
        finally:
            self.replaying = False
        from device_sim.overlay import draw_view

        return draw_view(frame, self.view, self.stages), _caption(self.view, self.stages)


def _col(rec, stage: str, kind: str) -> float:
    return rec.columns[stage_column(stage, kind)]


def _cropable(roi: Roi, w: int, h: int) -> bool:
    """A region a crop can be taken of: finite, at least a pixel wide and high, within 16 frame sizes of the frame.
    A track whose [stage.track] scale or shift_y compounds from frame to frame (each crop made from the points found
    in the one before) ends there, and the stage before looks again, instead of a NaN crop or a zero-sized one (a
    traceback mid-run)."""
    values = (roi.x, roi.y, roi.width, roi.height, roi.rotation)
    reach = 16 * max(w, h)
    return (all(np.isfinite(values)) and 1 <= min(roi.width, roi.height) and max(roi.width, roi.height) <= reach
            and abs(roi.x) <= reach and abs(roi.y) <= reach)


def _usable(roi: Roi, w: int, h: int) -> bool:
    """A crop can be taken of it and it overlaps the frame (a detector's region never lies wholly off it)."""
    if not _cropable(roi, w, h):
        return False
    x0, y0, x1, y1 = _bounds(roi)
    return bool(x1 > 0 and y1 > 0 and x0 < w and y0 < h)


def _next_crops(tracks: list[Roi], w: int, h: int) -> tuple[list[Roi], int]:
    """The next frame's crops of a tracking stage, and how many of them no crop can be taken of: a track that
    compounds past 16 frame sizes or to under a pixel, or moves wholly off the frame (points found on a crop that
    overlaps the frame never lead there): a wrong [stage.track] scale or shift_y, counted like a bad region, and
    the track ends (the stage before looks again)."""
    crops = [r for r in tracks if _usable(r, w, h)]
    return crops, len(tracks) - len(crops)


def _bounds(roi: Roi) -> np.ndarray:
    corners = roi_to_frame(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32), roi)
    return np.concatenate([corners.min(0), corners.max(0)])


def _overlap(a: Roi, b: Roi) -> float:
    from device_sim.decode.ssd import iou

    return float(iou(_bounds(a), _bounds(b)[None])[0])


def _caption(view: View, stages: list[Stage]) -> str:
    parts = (st.task.stage_caption(st.name, view.found.get(st.name), view.ran.get(st.name, 0)) for st in stages)
    return "  |  ".join(p for p in parts if p)
