"""A task kind: what a model's outputs mean, as one object. `Task` holds the defaults, which are those of a
model whose outputs `DeployedModel.postprocess` turns into a `Prediction` (classification, raw,
segmentation); a kind overrides what differs. Everything the simulator does that depends on the kind asks
the kind:

- the pipeline file: the [stage.<section>] tables it owns (`sections`, same form as device_sim.tasks.schema)
  the ones a stage of it must have (`required`) and the keys they must hold (`keys_needed`); where its stage may run
  (`on_frame`: the whole frame; `on_crops`: crops around the regions of an earlier stage whose kind
  `gives_regions`) and, for a stage that reads it, `regions()` and `region_points()`; `check_stage` (its
  sections against each other);
- a model of this kind: `check_model` (its card against its outputs), `all_outputs` (what invoke returns),
  `postprocess` (the single-model result), `overlay` and `caption` (demo.mp4 of a single model);
- a pipeline stage of this kind: `decoder` (raw outputs -> its result), `summary` (objects found,
  confidence, outputs finite), `shown` (what demo.mp4 draws, in frame pixels, through the model's
  Placement: the inverse of its input geometry), `keep` / `track` (a crop
  stage's result on one crop, and the crops it tracks into the next frame), `draw`, `stage_caption`,
  `found_means` (the report's meaning of frames_found).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Task", "pixels"]


class Task:
    name = ""
    sections: dict = {}            # section -> key -> (type, check, meaning)
    required: tuple = ()           # sections a stage of this kind must have
    keys_needed: dict = {}         # section -> keys it must hold when given
    on_frame = True                # may run on the whole frame
    on_crops = False               # may run on crops around an earlier stage's regions
    gives_regions = False          # a crop stage may read this stage (regions() turns its result into crops)
    standalone = False             # a single model (`--model`, a bare model's --task) may be of this kind
    uses_labels = False            # reads class names (`labels`, --labels); other kinds refuse them
    all_outputs = True             # DeployedModel.invoke returns every output (False: the first one only)
    holds = False                  # a whole-frame stage's last result stands on the frames it skips (every > 1)
    layer = 1                      # demo.mp4 draws lower layers first
    found_means = "frames with a finite result"

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # -- a model of this kind ---------------------------------------------------------------------------
    def check_model(self, model) -> None:
        """Raise UserError when the model's card cannot describe its outputs."""

    def postprocess(self, model, raw):
        """Every output value, dequantized (not decoded: a pipeline stage decodes them)."""
        from device_sim.model import Prediction

        values = np.concatenate([model.dequantize(r, i).ravel() for i, r in enumerate(raw)])
        return Prediction(-1, float("nan"), values)

    def overlay(self, model, frame: np.ndarray) -> np.ndarray | None:
        """The single model's drawing on a replayed frame; None: the caption says it all."""
        return None

    def caption(self, model, rec) -> str:
        """The single model's caption in demo.mp4 (rec: the frame's FrameRecord)."""
        return "outputs timed, not decoded"

    # -- a pipeline stage of this kind ------------------------------------------------------------------
    def decoder(self, spec, model):
        """raw outputs -> the stage's result on one frame or crop (called once per stage, at load)."""
        return model.postprocess

    def summary(self, result) -> tuple[int, float, bool]:
        """(objects found, confidence, every output finite) of a whole-frame result, or of the list `keep`
        returned for a crop stage."""
        ok = bool(np.isfinite(result.probs).all())
        return 1, result.confidence if ok else float("nan"), ok

    def shown(self, result, place):
        """What demo.mp4 shows of a whole-frame result, in frame pixels; `place` (device_sim.decode.geometry.
        Placement) maps the model's input back to the frame (its size: place.width, place.height)."""
        return result

    def region_points(self, spec) -> int:
        """How many points each of its regions carries (a reader's [stage.crop] rotation_keypoints index them)."""
        return 0

    def check_stage(self, spec) -> str | None:
        """What is inconsistent within a stage of this kind (its sections against each other), or None."""
        return None

    def regions(self, result, crop: dict, place) -> list:
        """The crops (device_sim.decode.geometry.Roi) a reading stage takes from this stage's result, placed
        by the reader's [stage.crop] section; `place`: this stage's model input in the frame (Placement)."""
        return []

    def finite(self, result) -> bool:
        """A crop stage: the result on one crop is finite."""
        return True

    def plausible(self, spec, result) -> bool:
        """A crop stage: the (finite) result on one crop is a possible one (False makes the frame invalid)."""
        return True

    def keep(self, spec, result, roi, tracked: bool):
        """A crop stage: what it keeps of its result on the crop `roi` (None: nothing)."""
        return None

    def tracks(self, spec) -> bool:
        """A crop stage that turns what it kept into the next frame's crops (see track)."""
        return False

    def track(self, spec, kept: list) -> list:
        return []

    def draw(self, frame: np.ndarray, shown) -> np.ndarray:
        return frame

    def stage_caption(self, name: str, shown, ran: int) -> str | None:
        """A stage's part of the caption; shown is None when it has nothing this frame."""
        if shown is None:
            return None
        return f"{name}: {100 * shown.confidence:.0f}%" + (f" class {shown.label}" if shown.label >= 0 else " of input")


def pixels(points) -> np.ndarray | None:
    """Frame coordinates as int32 pixels for OpenCV's drawing, clipped to +-32767 (a point far outside the frame
    draws nothing; one past int32 was a cv2.error after the whole run); None when any is not finite: nothing of
    that object is drawn (int(NaN) was a ValueError, and the run's outputs were lost)."""
    a = np.asarray(points, np.float64)
    if not np.isfinite(a).all():
        return None
    return np.round(np.clip(a, -32767, 32767)).astype(np.int32)
