"""Google's MediaPipe on the project's reference frames: runs in MediaPipe's own environment
(.mediapipe-venv, `make mediapipe-ref`), imports mediapipe, numpy and OpenCV only, nothing of edgevit.

Reads FRAMES/frames.json (scripts/face_frames.py) and writes OUT/reference.json and OUT/selfie_masks.npz:
- face, static mode: MediaPipe's face mesh graph (mediapipe/modules/face_landmark/face_landmark_front_cpu, what
  mp.solutions.face_mesh.FaceMesh runs, one face, no iris refinement), observed at its outputs
  face_detections (the short-range detector's, after NMS and the 1-face clip) and multi_face_landmarks, on
  every frame on its own (static_image_mode=True: the detector runs on every frame);
- face, tracking mode: the same graph with use_prev_landmarks (static_image_mode=False) over the sequence,
  in order; `detector_ran` follows the graph's gate (face_landmark_front_cpu.pbtxt: the detector sees a
  frame only when the previous frame's landmarks gave fewer ROIs than num_faces), and a frame whose
  face_detections packet is present shows it ran;
- selfie: mp.solutions.selfie_segmentation (model_selection=0, the 256x256 general model) on the static
  frames, its mask at frame size (uint8, x255).
Every coordinate is in frame pixels (MediaPipe's normalized x * width, y * height; z * width).

    .mediapipe-venv/bin/python scripts/mediapipe_reference.py FRAMES OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.python.solution_base import SolutionBase

FACE_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
OUTPUTS = ["multi_face_landmarks", "face_detections"]


def _face_mesh(static: bool) -> SolutionBase:
    """The graph FaceMesh(static_image_mode=static, max_num_faces=1) runs, with its detections observed too."""
    return SolutionBase(binary_graph_path=FACE_GRAPH,
                        side_inputs={"num_faces": 1, "with_attention": False, "use_prev_landmarks": not static},
                        outputs=OUTPUTS)


def _detections(found, w: int, h: int) -> list[dict] | None:
    if found is None:
        return None
    out = []
    for d in found:
        box = d.location_data.relative_bounding_box
        out.append({"score": float(d.score[0]),
                    "box": [box.xmin * w, box.ymin * h, (box.xmin + box.width) * w, (box.ymin + box.height) * h],
                    "keypoints": [[k.x * w, k.y * h] for k in d.location_data.relative_keypoints]})
    return out


def _landmarks(found, w: int, h: int) -> list[list[list[float]]]:
    return [[[p.x * w, p.y * h, p.z * w] for p in face.landmark] for face in (found or [])]


def _face(graph: SolutionBase, frame_bgr: np.ndarray) -> dict:
    h, w = frame_bgr.shape[:2]
    r = graph.process({"image": cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)})
    return {"detections": _detections(r.face_detections, w, h), "landmarks": _landmarks(r.multi_face_landmarks, w, h)}


def run(frames: Path, out: Path) -> None:
    index = json.loads((frames / "frames.json").read_text())
    read = lambda p: cv2.imread(str(frames / f"{p['name']}.png"), cv2.IMREAD_COLOR)  # noqa: E731
    static, sequence, masks = {}, [], {}
    with _face_mesh(static=True) as graph:
        for p in index["static"]:
            static[p["name"]] = _face(graph, read(p))
    with _face_mesh(static=False) as graph:
        for i, p in enumerate(index["sequence"]):
            rec = _face(graph, read(p))
            rec["detector_ran"] = i == 0 or not sequence[-1]["landmarks"]
            rec["detections_packet"] = rec["detections"] is not None
            if rec["detections_packet"] and not rec["detector_ran"]:
                raise RuntimeError(f"{p['name']}: detections without the gate letting the detector run; the "
                                   "graph is not the one this script reads")
            sequence.append(rec)
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        for p in index["static"]:
            mask = seg.process(cv2.cvtColor(read(p), cv2.COLOR_BGR2RGB)).segmentation_mask
            masks[p["name"]] = np.clip(np.round(mask * 255), 0, 255).astype(np.uint8)
    versions = {"mediapipe": mp.__version__, "numpy": np.__version__, "opencv": cv2.__version__}
    (out / "reference.json").write_text(json.dumps({"frames_version": index["version"], "versions": versions,
                                                    "face_static": static, "face_sequence": sequence}) + "\n")
    np.savez_compressed(out / "selfie_masks.npz", **masks)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: scripts/mediapipe_reference.py FRAMES OUT", file=sys.stderr)
        return 2
    run(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
