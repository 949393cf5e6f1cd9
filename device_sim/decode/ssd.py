"""SSD-style detection decoding, as MediaPipe's detectors need it (numpy only).

- `ssd_anchors(AnchorSpec)`: the anchor grid. Consecutive layers with the same stride share one
  feature map; each cell gets one anchor per aspect ratio per layer (plus one interpolated-scale
  anchor per layer when `interpolated_scale_aspect_ratio` > 0). Centres at (col + offset) / map width,
  (row + offset) / map height; sizes 1 x 1 when `fixed_anchor_size`, else the layer's scale shaped by
  the aspect ratio. This is the scheme of MediaPipe's SsdAnchorsCalculator options (min_scale,
  max_scale, strides, anchor offsets, aspect ratios), written from its documented parameters.
- `decode(raw_boxes, raw_scores, anchors, DecodeSpec)`: box (x centre, y centre, w, h) and keypoint
  offsets relative to the anchor, divided by the input size (`scale`); scores through a sigmoid after
  clipping; everything under `min_score` dropped. Coordinates come out normalized to the model input.
- `weighted_nms(detections, iou_threshold)`: MediaPipe's WEIGHTED suppression: the best-scoring box
  and every box overlapping it by more than the threshold are merged into their score-weighted mean
  (score: the best's); repeat on what is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AnchorSpec", "DecodeSpec", "Detections", "ssd_anchors", "decode", "weighted_nms", "iou"]


@dataclass(frozen=True)
class AnchorSpec:
    input_width: int
    input_height: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class DecodeSpec:
    scale: float                  # input size the raw offsets are expressed in (x, y, w and h alike)
    num_keypoints: int = 0
    box_offset: int = 0           # where the 4 box values start in each anchor's row
    keypoint_offset: int = 4
    min_score: float = 0.5
    score_clip: float = 100.0
    sigmoid: bool = True


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray       # (M, 4) xmin, ymin, xmax, ymax, normalized to the model input
    keypoints: np.ndarray   # (M, K, 2) x, y normalized
    scores: np.ndarray      # (M,)

    def __len__(self) -> int:
        return len(self.scores)


def _scale(spec: AnchorSpec, layer: int) -> float:
    n = len(spec.strides)
    return (spec.min_scale + spec.max_scale) / 2 if n == 1 else \
        spec.min_scale + (spec.max_scale - spec.min_scale) * layer / (n - 1)


def ssd_anchors(spec: AnchorSpec) -> np.ndarray:
    """(N, 4) anchors: x centre, y centre, w, h (normalized)."""
    out, layer = [], 0
    while layer < len(spec.strides):
        sizes = []   # (w, h) of each anchor of one cell
        last = layer
        while last < len(spec.strides) and spec.strides[last] == spec.strides[layer]:
            scale = _scale(spec, last)
            sizes += [(scale * math.sqrt(r), scale / math.sqrt(r)) for r in spec.aspect_ratios]
            if spec.interpolated_scale_aspect_ratio > 0:
                following = 1.0 if last == len(spec.strides) - 1 else _scale(spec, last + 1)
                r, s = spec.interpolated_scale_aspect_ratio, math.sqrt(scale * following)
                sizes.append((s * math.sqrt(r), s / math.sqrt(r)))
            last += 1
        rows = math.ceil(spec.input_height / spec.strides[layer])
        cols = math.ceil(spec.input_width / spec.strides[layer])
        ys, xs = np.meshgrid((np.arange(rows) + spec.offset) / rows, (np.arange(cols) + spec.offset) / cols,
                             indexing="ij")
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), len(sizes), axis=0)
        wh = np.ones((len(centres), 2)) if spec.fixed_anchor_size else np.tile(np.asarray(sizes), (rows * cols, 1))
        out.append(np.hstack([centres, wh]))
        layer = last
    return np.concatenate(out).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: DecodeSpec) -> Detections:
    """raw_boxes (N, C), raw_scores (N,) or (N, 1), anchors (N, 4) -> the detections above min_score."""
    raw_boxes = np.asarray(raw_boxes, np.float32).reshape(len(anchors), -1)
    scores = np.asarray(raw_scores, np.float64).reshape(len(anchors))
    if spec.sigmoid:   # in float64: exp(100) overflows float32
        scores = 1.0 / (1.0 + np.exp(-np.clip(scores, -spec.score_clip, spec.score_clip)))
    scores = scores.astype(np.float32)
    keep = scores >= spec.min_score
    raw, a, scores = raw_boxes[keep], anchors[keep], scores[keep]
    b = spec.box_offset
    xc = raw[:, b] / spec.scale * a[:, 2] + a[:, 0]
    yc = raw[:, b + 1] / spec.scale * a[:, 3] + a[:, 1]
    w = raw[:, b + 2] / spec.scale * a[:, 2]
    h = raw[:, b + 3] / spec.scale * a[:, 3]
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)
    k = spec.keypoint_offset
    kx = raw[:, k:k + 2 * spec.num_keypoints:2] / spec.scale * a[:, 2:3] + a[:, 0:1]
    ky = raw[:, k + 1:k + 2 * spec.num_keypoints:2] / spec.scale * a[:, 3:4] + a[:, 1:2]
    return Detections(boxes, np.stack([kx, ky], -1), scores)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with each of (M, 4) boxes (xmin, ymin, xmax, ymax)."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(det: Detections, iou_threshold: float = 0.3, max_detections: int | None = None) -> Detections:
    order = np.argsort(-det.scores, kind="stable")
    boxes, kps, scores = det.boxes[order], det.keypoints[order], det.scores[order]
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining) and (max_detections is None or len(out_s) < max_detections):
        best = remaining[0]
        group = remaining[iou(boxes[best], boxes[remaining]) > iou_threshold]
        group = group if best in group else np.concatenate([[best], group])   # a degenerate box still counts
        weights = scores[group][:, None]
        out_b.append((boxes[group] * weights).sum(0) / weights.sum())
        out_k.append((kps[group] * weights[:, :, None]).sum(0) / weights.sum())
        out_s.append(scores[best])
        remaining = np.setdiff1d(remaining, group, assume_unique=True)
        remaining = remaining[np.argsort(-scores[remaining], kind="stable")]
    k = det.keypoints.shape[1] if det.keypoints.ndim == 3 else 0
    n = len(out_s)
    return Detections(np.asarray(out_b, np.float32).reshape(n, 4), np.asarray(out_k, np.float32).reshape(n, k, 2),
                      np.asarray(out_s, np.float32))
