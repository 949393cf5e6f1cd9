"""detection: an SSD detector (MediaPipe's face and palm detectors): boxes and keypoints decoded against the
anchors of [stage.anchors] with the [stage.decode] rules, then weighted NMS (device_sim.decode.ssd). A crop
stage reads its detections: one crop per detection, placed by the reader's [stage.crop]. Between runs
(`every`, skip_while_tracking) its last detections stand."""

from __future__ import annotations

import math

import cv2
import numpy as np

from device_sim.tasks import register_task
from device_sim.tasks.base import Task, pixels
from device_sim.tasks.schema import BOOL, OUTPUT, num, whole

__all__ = ["Detection"]

_DECODE_KEYS = ("scale", "num_keypoints", "box_offset", "keypoint_offset", "min_score", "score_clip", "sigmoid")
_BOX, _KEYPOINT = (0, 200, 0), (0, 0, 255)


class Detection(Task):
    name = "detection"
    sections = {
        # bounded: an anchor of 1e300 input sizes (or an aspect ratio of inf) decodes finite garbage boxes
        "anchors": {"strides": (list, lambda v: v and all(isinstance(x, int) and not isinstance(x, bool)
                                                          and 1 <= x <= 4096 for x in v), "whole numbers 1..4096"),
                    "min_scale": num(lambda v: 0 < v <= 16, "0 < x <= 16 (input sizes)"),
                    "max_scale": num(lambda v: 0 < v <= 16, "0 < x <= 16 (input sizes)"),
                    "offset": num(lambda v: 0 <= v <= 1, "0..1"),
                    "aspect_ratios": (list, lambda v: v and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                                and 1e-3 <= x <= 1e3 for x in v),
                                      "numbers 1e-3..1e3"),
                    "interpolated_scale_aspect_ratio": num(lambda v: 0 <= v <= 1e3, "0..1e3 (0: none)"),
                    "fixed_anchor_size": BOOL},
        "decode": {"boxes_output": OUTPUT, "scores_output": OUTPUT,
                   "scale": num(lambda v: 1e-6 <= v <= 1e9, "1e-6..1e9 (the size its offsets are in)"),
                   "num_keypoints": whole(0, 64), "box_offset": whole(0, 1024), "keypoint_offset": whole(0, 1024),
                   "min_score": num(lambda v: 0 <= v <= 1, "0..1"), "score_clip": num(lambda v: v > 0, "> 0"),
                   "sigmoid": BOOL, "nms_iou": num(lambda v: 0 < v <= 1, "0 < x <= 1"),
                   "max_detections": whole(1, 100)},
    }
    required = ("anchors", "decode")
    keys_needed = {"anchors": ("strides",)}
    gives_regions = True
    holds = True
    found_means = "detections after suppression"

    def decoder(self, spec, model):
        """Decodes against the anchors; refuses a model whose outputs do not match them."""
        from contract.errors import UserError
        from device_sim.decode.ssd import AnchorSpec, DecodeSpec, decode, ssd_anchors, weighted_nms

        anchors_ = spec.sections["anchors"]
        anchors = ssd_anchors(AnchorSpec(input_width=model.width, input_height=model.height,
                                         **{k: tuple(v) if isinstance(v, list) else v for k, v in anchors_.items()}))
        d = spec.sections["decode"]
        rule = DecodeSpec(**{"scale": float(model.width)} | {k: d[k] for k in _DECODE_KEYS if k in d})
        outs = [int(np.prod(s["shape"])) for s in model.output_specs]
        b, s = d.get("boxes_output", 0), d.get("scores_output", 1)
        for key, i in (("boxes_output", b), ("scores_output", s)):
            if i >= len(outs):
                raise UserError(f"[stage.decode] {key} = {i}, but {spec.model.name} has {len(outs)} output(s) "
                                f"(0..{len(outs) - 1})")
        if b == s:
            raise UserError(f"[stage.decode] boxes_output and scores_output are both {b}; the boxes and the scores "
                            "are two outputs of the detector")
        if outs[s] != len(anchors) or outs[b] % len(anchors):
            raise UserError(f"the anchors give {len(anchors)} boxes, but {spec.model.name} "
                            f"outputs {outs}; check [stage.anchors] and boxes_output / scores_output")
        per = outs[b] // len(anchors)   # values per anchor: 4 box values, then 2 per keypoint
        for what, start, n in (("box_offset", rule.box_offset, 4),
                               ("keypoint_offset", rule.keypoint_offset, 2 * rule.num_keypoints)):
            if start + n > per:
                raise UserError(f"[stage.decode] {what} = {start} with num_keypoints = "
                                f"{rule.num_keypoints} reads values {start}..{start + n - 1} of each anchor, but "
                                f"{spec.model.name} gives {per} per anchor")

        def run(raw):
            from contract.quant import dequantize_output

            boxes, scores = (dequantize_output(raw[i], model.output_specs[i]) for i in (b, s))
            return weighted_nms(decode(boxes[0], scores[0], anchors, rule), d.get("nms_iou", 0.3),
                                d.get("max_detections"))

        return _Decoder(anchors, rule, run)

    def summary(self, det) -> tuple[int, float, bool]:
        ok = bool(np.isfinite(det.boxes).all() and np.isfinite(det.scores).all())
        return len(det), float(det.scores.max()) if len(det) else 0.0, ok

    def shown(self, det, place) -> list:
        return [(place.points(b.reshape(2, 2)).ravel(), place.points(k), s)
                for b, k, s in zip(det.boxes, det.keypoints, det.scores)]

    def region_points(self, spec) -> int:
        return spec.sections["decode"].get("num_keypoints", 0)

    def regions(self, det, crop: dict, place) -> list:
        from device_sim.decode.geometry import roi_from_detection

        return [roi_from_detection(box, kps, place.width, place.height, region=place.region,
                                   scale=crop.get("scale", 1.5),
                                   rotation_keypoints=tuple(crop.get("rotation_keypoints", (0, 1))),
                                   target_angle=math.radians(crop.get("target_angle", 0.0)),
                                   shift_y=crop.get("shift_y", 0.0))
                for box, kps in zip(det.boxes, det.keypoints) if np.isfinite(box).all() and np.isfinite(kps).all()]

    def draw(self, frame: np.ndarray, shown) -> np.ndarray:
        for box, keypoints, score in shown:
            corners, points = pixels(box), pixels(keypoints)
            if corners is None or points is None or not np.isfinite(score):   # an invalid frame: not drawn
                continue
            x0, y0, x1, y1 = (int(v) for v in corners)
            cv2.rectangle(frame, (x0, y0), (x1, y1), _BOX, 2)
            cv2.putText(frame, f"{100 * score:.0f}%", (x0, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _BOX, 1,
                        cv2.LINE_AA)
            for x, y in points:
                cv2.circle(frame, (int(x), int(y)), 3, _KEYPOINT, -1)
        return frame

    def stage_caption(self, name: str, shown, ran: int) -> str:
        return f"{name}: " + (f"{len(shown or [])} found" if ran else "skipped")


class _Decoder:
    """raw outputs -> Detections; keeps the anchors and the decoding rule it was built with."""

    def __init__(self, anchors: np.ndarray, rule, run):
        self.anchors, self.rule, self._run = anchors, rule, run

    def __call__(self, raw):
        return self._run(raw)


register_task(Detection())
