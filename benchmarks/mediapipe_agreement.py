"""edgevit's built-in pipelines against Google's MediaPipe 0.10.14 on the project's reference frames
(`make mediapipe-ref`: scripts/face_frames.py makes the frames, scripts/mediapipe_reference.py runs MediaPipe
on them in its own environment). Runs edgevit's face and selfie pipelines on the same PNGs (host, untimed)
and measures the agreement:

- face, static mode (every frame on its own): found / not found by the detector and by the landmark stage;
  where both found a face, the detector box's IoU, the worst of its 6 keypoints' distance (px), and the mean
  distance of the 468 landmarks in inter-ocular distances (MediaPipe's outer eye corners, 33 and 263);
- face, tracking mode (the 60-frame sequence in order): the frames the detector ran on, and the landmarks'
  error on the frames both sides track;
- selfie: IoU of the masks (> 0.5) and their mean absolute difference, at frame size.

    python -m benchmarks.mediapipe_agreement [--ref .mediapipe-ref] [--json FILE]

The tests (tests/test_mediapipe_reference.py) hold these numbers to the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["REF_DIR", "reference", "face_static", "face_sequence", "selfie", "summary", "iou", "interocular"]

REF_DIR = Path(".mediapipe-ref")
EYE_CORNERS = (33, 263)       # outer eye corners of the 468-point mesh


def reference(ref: Path = REF_DIR) -> tuple[dict, Path]:
    """(MediaPipe's reference.json, the frames folder); FileNotFoundError when `make mediapipe-ref` has not run."""
    ref = Path(ref)
    return json.loads((ref / "reference.json").read_text()), ref / "frames"


def _pipeline(name: str):
    from device_sim.pipelines import load_pipeline
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    spec = load_pipeline(name)
    return Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])


def _frame(frames: Path, name: str) -> np.ndarray:
    import cv2

    frame = cv2.imread(str(frames / f"{name}.png"), cv2.IMREAD_COLOR)
    if frame is None:
        raise FileNotFoundError(frames / f"{name}.png")
    return frame


def iou(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def interocular(points) -> float:
    p = np.asarray(points, np.float64)
    return float(np.linalg.norm(p[EYE_CORNERS[0], :2] - p[EYE_CORNERS[1], :2]))


def _landmark_error(ours, theirs) -> float:
    """Mean distance of our points to MediaPipe's, in MediaPipe's inter-ocular distances."""
    theirs = np.asarray(theirs, np.float64)[:, :2]
    return float(np.linalg.norm(np.asarray(ours, np.float64) - theirs, axis=1).mean() / interocular(theirs))


def _ours(pipe) -> tuple[list, list]:
    """(detections, landmark sets) of the face pipeline's two stages on the last frame, in frame pixels."""
    detector, mesh = (st.name for st in pipe.stages)
    return list(pipe.view.found.get(detector) or []), list(pipe.view.found.get(mesh) or [])


def _compare(name: str, ours: tuple[list, list], theirs: dict) -> dict:
    dets, lms = ours
    mp_dets, mp_lms = theirs["detections"] or [], theirs["landmarks"]
    row = {"frame": name, "mp_detected": bool(mp_dets), "detected": bool(dets), "mp_mesh": bool(mp_lms),
           "mesh": bool(lms)}
    if mp_dets:
        row["mp_centre_x"] = float((mp_dets[0]["box"][0] + mp_dets[0]["box"][2]) / 2)
    if dets and mp_dets:
        box, kps, _ = dets[0]
        row["box_iou"] = iou(box, mp_dets[0]["box"])
        row["keypoints_px"] = float(np.linalg.norm(np.asarray(kps) - np.asarray(mp_dets[0]["keypoints"]), axis=1).max())
    if lms and mp_lms:
        row["landmarks_iod"] = _landmark_error(lms[0].points, mp_lms[0])
    return row


def face_static(ref: Path = REF_DIR) -> list[dict]:
    """One row per static frame: edgevit's face pipeline (reset before every frame) against MediaPipe's."""
    data, frames = reference(ref)
    pipe, rows = _pipeline("face"), []
    for name, theirs in data["face_static"].items():
        pipe.reset()
        pipe.process(_frame(frames, name))
        rows.append(_compare(name, _ours(pipe), theirs))
    return rows


def face_sequence(ref: Path = REF_DIR) -> list[dict]:
    """One row per sequence frame, in order (tracking): who ran the detector, and the landmarks' agreement."""
    data, frames = reference(ref)
    index = json.loads((frames / "frames.json").read_text())
    pipe, rows = _pipeline("face"), []
    for p, theirs in zip(index["sequence"], data["face_sequence"]):
        pipe.process(_frame(frames, p["name"]))
        row = _compare(p["name"], _ours(pipe), theirs)
        ran = pipe.view.ran.get(pipe.stages[0].name, 0) > 0
        row |= {"mp_detector_ran": theirs["detector_ran"], "detector_ran": ran}
        rows.append(row)
    return rows


def selfie(ref: Path = REF_DIR) -> list[dict]:
    """One row per static frame: edgevit's selfie pipeline's mask in frame pixels against MediaPipe's."""
    data, frames = reference(ref)
    theirs = np.load(Path(ref) / "selfie_masks.npz")
    pipe, rows = _pipeline("selfie"), []
    for name in data["face_static"]:
        pipe.reset()
        pipe.process(_frame(frames, name))
        ours = pipe.view.found[pipe.stages[0].name].probs
        mp_mask = theirs[name].astype(np.float32) / 255.0
        a, b = ours > 0.5, mp_mask > 0.5
        union = (a | b).sum()
        rows.append({"frame": name, "mask_iou": float((a & b).sum() / union) if union else 1.0,
                     "mean_abs": float(np.abs(ours - mp_mask).mean())})
    return rows


def _mismatched_runs(rows: list[dict], tolerance: int = 1) -> list[str]:
    """Frames where one side ran the detector and the other did not within +-tolerance frames."""
    mine = [i for i, r in enumerate(rows) if r["detector_ran"]]
    theirs = [i for i, r in enumerate(rows) if r["mp_detector_ran"]]
    near = lambda i, others: any(abs(i - j) <= tolerance for j in others)  # noqa: E731
    return [rows[i]["frame"] for i in mine if not near(i, theirs)] + \
        [rows[i]["frame"] for i in theirs if not near(i, mine)]


def summary(static: list[dict], sequence: list[dict], masks: list[dict]) -> dict:
    both = [r for r in static if "box_iou" in r]
    lms = [r for r in static if "landmarks_iod" in r]
    tracked = [r for r in sequence if "landmarks_iod" in r]
    band = [r for r in static if r["mp_detected"] and not 80 <= r["mp_centre_x"] <= 560]   # 640-wide frames
    return {
        "static_frames": len(static), "mp_faces": sum(r["mp_detected"] for r in static),
        "found_mismatch": [r["frame"] for r in static if r["mp_detected"] != r["detected"]
                           or r["mp_mesh"] != r["mesh"]],
        "box_iou_min": min((r["box_iou"] for r in both), default=None),
        "keypoints_px_max": max((r["keypoints_px"] for r in both), default=None),
        "landmarks_iod_mean_max": max((r["landmarks_iod"] for r in lms), default=None),
        "outer_band_faces": [r["frame"] for r in band], "outer_band_found": [r["frame"] for r in band if r["detected"]],
        "sequence_frames": len(sequence), "mp_detector_runs": sum(r["mp_detector_ran"] for r in sequence),
        "detector_runs": sum(r["detector_ran"] for r in sequence), "detector_run_mismatch": _mismatched_runs(sequence),
        "tracked_both": len(tracked), "tracked_mismatch": [r["frame"] for r in sequence
                                                         if r["mp_mesh"] != r["mesh"]],
        "tracked_landmarks_iod_mean_max": max((r["landmarks_iod"] for r in tracked), default=None),
        "selfie_mask_iou_min": min((r["mask_iou"] for r in masks), default=None),
        "selfie_mask_iou_mean": float(np.mean([r["mask_iou"] for r in masks])) if masks else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mediapipe_agreement", description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=str(REF_DIR), help="the folder `make mediapipe-ref` writes (.mediapipe-ref)")
    ap.add_argument("--json", default=None, help="also write every row and the summary here")
    args = ap.parse_args(argv)
    try:
        static, sequence, masks = face_static(args.ref), face_sequence(args.ref), selfie(args.ref)
    except FileNotFoundError as e:
        print(f"mediapipe_agreement: {e.filename} is missing; run `make mediapipe-ref` first", file=sys.stderr)
        return 2
    result = summary(static, sequence, masks)
    for key, value in result.items():
        print(f"  {key:32s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": result, "face_static": static, "face_sequence": sequence,
                                               "selfie": masks}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
