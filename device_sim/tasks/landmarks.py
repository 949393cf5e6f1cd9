"""landmarks: points on a crop (MediaPipe's face mesh and hand landmarks), decoded with [stage.landmarks]:
`count` points of `dims` values in crop pixels (`scale`), and a presence score. It runs on crops only: around
the regions of an earlier detection or landmarks stage (input = that stage). A crop whose presence reaches
the threshold is kept; with [stage.track] it becomes the next frame's crop (MediaPipe's landmarks -> ROI).
A later crop stage may read it too: one crop per kept set of points, placed by that stage's [stage.crop]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from device_sim.tasks import register_task
from device_sim.tasks.base import Task, pixels
from device_sim.tasks.schema import ANGLE, BOOL, OUTPUT, ints, num, whole

__all__ = ["Landmarks", "LandmarksTask"]

_POINT, _TRACKED, _NEW = (255, 255, 255), (0, 220, 255), (255, 200, 0)
_EXTENTS = ("rotated", "axis_aligned")


@dataclass
class Landmarks:
    roi: object             # device_sim.decode.geometry.Roi: the crop the points were found on
    points: np.ndarray      # (count, 2) frame pixels
    presence: float
    tracked: bool           # the crop came from the previous frame's landmarks


class LandmarksTask(Task):
    name = "landmarks"
    sections = {
        "landmarks": {"output": OUTPUT, "count": whole(1, 10000), "dims": whole(2, 3),
                      "scale": num(lambda v: 1e-6 <= v <= 1e9, "1e-6..1e9 (the size its values are in)"),
                      "presence_output": OUTPUT, "presence_sigmoid": BOOL,
                      "presence_threshold": num(lambda v: 0 < v <= 1, "0 < x <= 1 (0: a track that never ends)")},
        "track": {"rotation_landmarks": ints(2), "target_angle": ANGLE,
                  "scale": num(lambda v: 1e-3 <= v <= 1e3, "1e-3..1e3 (times the points' box)"),
                  "shift_y": num(lambda v: -100 <= v <= 100, "-100..100 (box heights)"),
                  "extent": (str, lambda v: v in _EXTENTS, " | ".join(_EXTENTS) + " (the points' box along the "
                                                                              "crop's axes or the frame's)")},
    }
    required = ("landmarks",)
    keys_needed = {"landmarks": ("count",), "track": ("rotation_landmarks",)}
    on_frame, on_crops, gives_regions = False, True, True
    layer = 2
    found_means = "crops whose presence reached the threshold"

    def decoder(self, spec, model):
        """Refuses keys that do not fit the model's outputs (called when the pipeline loads)."""
        from contract.errors import UserError
        from contract.quant import dequantize_output

        lm = spec.sections["landmarks"]
        count, dims, scale = lm["count"], lm.get("dims", 3), lm.get("scale", float(model.width))
        sizes = [int(np.prod(o["shape"])) for o in model.output_specs]
        for key in ("output", "presence_output"):
            if lm.get(key, 0) >= len(sizes):
                raise UserError(f"[stage.landmarks] {key} = {lm[key]}, but {spec.model.name} has {len(sizes)} "
                                f"output(s) (0..{len(sizes) - 1})")
        presence = lm.get("presence_output")
        if presence is not None and presence == lm.get("output", 0):
            raise UserError(f"[stage.landmarks] presence_output = {presence} is the landmarks' own output (output = "
                            f"{lm.get('output', 0)}); name the output that holds the presence score")
        if presence is not None and sizes[presence] != 1:
            raise UserError(f"[stage.landmarks] presence_output = {presence} must be an output of its own holding one "
                            f"value, but output {presence} of {spec.model.name} holds {sizes[presence]}")
        if count * dims != sizes[lm.get("output", 0)]:
            raise UserError(f"[stage.landmarks] count x dims = {count} x {dims} = {count * dims}, but output "
                            f"{lm.get('output', 0)} of {spec.model.name} holds {sizes[lm.get('output', 0)]} values; "
                            "give the count and dims of its points")

        def run(raw):
            values = dequantize_output(raw[lm.get("output", 0)], model.output_specs[lm.get("output", 0)])
            points = values.reshape(-1)[: count * dims].reshape(count, dims)[:, :2] / scale
            presence = 1.0
            if "presence_output" in lm:
                i = lm["presence_output"]
                presence = float(dequantize_output(raw[i], model.output_specs[i]).reshape(-1)[0])
                if lm.get("presence_sigmoid", False):
                    presence = 1.0 / (1.0 + math.exp(-max(min(presence, 100.0), -100.0)))
            return points, presence

        return run

    def finite(self, result) -> bool:
        points, presence = result
        return bool(np.isfinite(points).all()) and math.isfinite(presence)

    def plausible(self, spec, result) -> bool:
        """Found points lie on or near their crop (within a crop's size of it): a `scale` that is not the model's
        input size (1.0 for 192) put them hundreds of crops away, and the run passed."""
        points, presence = result
        if not presence >= spec.sections["landmarks"].get("presence_threshold", 0.5):
            return True   # not found: its points are not used
        return bool(((points >= -1.0) & (points <= 2.0)).all())

    def keep(self, spec, result, roi, tracked: bool) -> Landmarks | None:
        from device_sim.decode.geometry import roi_to_frame

        points, presence = result
        if not presence >= spec.sections["landmarks"].get("presence_threshold", 0.5):   # NaN: not found either
            return None
        return Landmarks(roi, roi_to_frame(points, roi), presence, tracked)

    def summary(self, kept: list) -> tuple[int, float, bool]:
        return len(kept), max((k.presence for k in kept), default=0.0), True

    def tracks(self, spec) -> bool:
        return bool(spec.sections.get("track"))

    def track(self, spec, kept: list) -> list:
        tr = spec.sections.get("track")
        return [self._roi(k.points, tr.get("rotation_landmarks"), tr) for k in kept
                if np.isfinite(k.points).all()] if tr else []   # a track whose points overflowed ends

    def region_points(self, spec) -> int:
        return spec.sections["landmarks"]["count"]

    def check_stage(self, spec) -> str | None:
        count, track = spec.sections["landmarks"]["count"], spec.sections.get("track", {})
        if "rotation_landmarks" in track and max(track["rotation_landmarks"]) >= count:
            return (f"[stage.track] rotation_landmarks = {track['rotation_landmarks']} but [stage.landmarks] count = "
                    f"{count} (points 0..{count - 1})")
        if track and "presence_output" not in spec.sections["landmarks"]:   # the stage before would idle for ever
            return ("[stage.track] needs [stage.landmarks] presence_output (the score that ends a track when the "
                    "object leaves); without it a track never ends and the stage before never looks again")
        return None

    def regions(self, kept: list, crop: dict, place) -> list:
        return [self._roi(k.points, crop.get("rotation_keypoints", (0, 1)), crop) for k in kept
                if np.isfinite(k.points).all()]

    @staticmethod
    def _roi(points: np.ndarray, rotation: tuple, table: dict):
        from device_sim.decode.geometry import roi_from_points

        return roi_from_points(points, rotation_points=tuple(rotation),
                               target_angle=math.radians(table.get("target_angle", 0.0)),
                               scale=table.get("scale", 1.5), shift_y=table.get("shift_y", 0.0),
                               axis_aligned=table.get("extent", "rotated") == "axis_aligned")

    def draw(self, frame: np.ndarray, kept) -> np.ndarray:
        from device_sim.decode.geometry import roi_to_frame

        for lm in kept:
            corners = pixels(roi_to_frame(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32), lm.roi))
            points = pixels(lm.points[:, :2])
            if corners is None or points is None:   # non-finite: counted as an invalid frame, not drawn
                continue
            cv2.polylines(frame, [corners], True, _TRACKED if lm.tracked else _NEW, 1, cv2.LINE_AA)
            radius = 1 if len(points) > 100 else 3
            for x, y in points:
                cv2.circle(frame, (int(x), int(y)), radius, _POINT, -1)
        return frame

    def stage_caption(self, name: str, kept, ran: int) -> str:
        kept = kept or []
        how = "tracked" if any(k.tracked for k in kept) else "new"
        return f"{name}: {len(kept)} on {ran} crop(s)" + (f" ({how})" if kept else "")


register_task(LandmarksTask())
