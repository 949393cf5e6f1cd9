"""The frames edgevit's face pipeline is checked on against MediaPipe (`make mediapipe-ref`): made here from
the portrait of `make mediapipe-models` (.models/astronaut.png), numpy + OpenCV only, the same bytes on
every run (seeded), written as PNG (lossless: both sides read the same pixels).

- `static`: 640x480 frames, each on its own: the face turned (roll), large and small, shifted (off-centre,
  half out of the frame, in the outer 80 px band that a centre crop never sees), darker and brighter,
  mirrored, random mixes of all of these, and frames with no face at all.
- `sequence`: 60 frames of a moving camera for tracking mode: the face drifts right, leaves the frame,
  stays away, comes back on the left, turning and zooming as it goes.

    python scripts/face_frames.py OUT_DIR [--photo .models/astronaut.png]   # writes OUT_DIR/*.png, frames.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
FACE_CENTRE = (226.0, 128.0)   # the face's centre in astronaut.png (512x512), from MediaPipe's detection box
FACE_SIZE = 100.0              # the side of that box, photo pixels
BACKGROUND = 40                # grey outside the photograph
SEQUENCE_LENGTH = 60
VERSION = 1                    # bump when the frames change: the reference is rebuilt


def place(photo: np.ndarray, *, x: float = 320, y: float = 240, size: float = 150, roll: float = 0.0,
          gain: float = 1.0, gamma: float = 1.0, mirror: bool = False) -> np.ndarray:
    """A WIDTHxHEIGHT BGR frame with the face's centre at (x, y), `size` px wide, turned by `roll` degrees
    (anticlockwise as seen), exposure `gain` and `gamma` (out = 255 * (gain * in / 255) ** gamma)."""
    s = size / FACE_SIZE
    cx, cy = FACE_CENTRE
    src = photo[:, ::-1] if mirror else photo
    if mirror:
        cx = photo.shape[1] - 1 - cx
    m = cv2.getRotationMatrix2D((cx, cy), roll, s)
    m[:, 2] += np.array([x - cx, y - cy])
    frame = cv2.warpAffine(np.ascontiguousarray(src), m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(BACKGROUND,) * 3)
    if gain != 1.0 or gamma != 1.0:
        lut = np.clip(255.0 * np.clip(gain * np.arange(256) / 255.0, 0, None) ** gamma, 0, 255).astype(np.uint8)
        frame = cv2.LUT(frame, lut)
    return frame


def _no_face(photo: np.ndarray, kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "grey":
        return np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    if kind == "noise":
        return cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), (0, 0), 3)
    if kind == "gradient":
        ramp = np.linspace(0, 255, WIDTH, dtype=np.float32)[None, :, None]
        return np.broadcast_to(ramp * np.array([0.3, 0.7, 1.0]), (HEIGHT, WIDTH, 3)).astype(np.uint8)
    # the lower right of the photograph (the flag and the suit), enlarged
    return cv2.resize(photo[300:512, 260:512], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def static_params() -> list[dict]:
    """Name and placement of every static frame."""
    out = [{"name": f"size_{s}", "size": s} for s in (50, 70, 100, 150, 220, 300)]
    out += [{"name": f"roll_{r:+d}", "roll": r} for r in (-40, -25, -12, 12, 25, 40)]
    spots = [(40, 240), (60, 120), (70, 400), (600, 240), (585, 90), (575, 380), (320, 50), (320, 440),
             (130, 240), (510, 240), (100, 90), (540, 400)]
    out += [{"name": f"at_{x}_{y}", "x": x, "y": y, "size": 120} for x, y in spots]
    out += [{"name": f"gain_{g}", "gain": g} for g in (0.35, 0.6, 1.6, 2.2)]
    out += [{"name": f"gamma_{g}", "gamma": g} for g in (0.5, 2.0)]
    out += [{"name": "mirror", "mirror": True}, {"name": "mirror_edge", "mirror": True, "x": 45, "y": 250, "size": 130},
            {"name": "mirror_roll", "mirror": True, "roll": -20, "x": 590, "size": 110}]
    rng = np.random.default_rng(19)
    for i in range(12):
        out.append({"name": f"mix_{i:02d}", "x": float(rng.uniform(30, 610)), "y": float(rng.uniform(40, 440)),
                    "size": float(rng.uniform(70, 250)), "roll": float(rng.uniform(-35, 35)),
                    "gain": float(rng.uniform(0.6, 1.5)), "mirror": bool(rng.random() < 0.5)})
    out += [{"name": f"noface_{k}", "no_face": k} for k in ("grey", "noise", "gradient", "flag")]
    return out


def sequence_params() -> list[dict]:
    """Tracking mode: drift right and out (frames 0-27), away (28-35), back in from the left (36-59)."""
    out = []
    for t in range(SEQUENCE_LENGTH):
        if t < 28:
            x = 320 + t * 16.0
        elif t < 36:
            x = 1000.0
        else:
            x = 60 + (t - 36) * 9.0
        out.append({"name": f"seq_{t:02d}", "x": x, "y": 240 + 30 * math.sin(t / 6), "size": 150 + 40 * math.sin(t / 9),
                    "roll": 15 * math.sin(t / 5)})
    return out


def render(photo: np.ndarray, p: dict) -> np.ndarray:
    if "no_face" in p:
        return _no_face(photo, p["no_face"])
    keys = ("x", "y", "size", "roll", "gain", "gamma", "mirror")
    return place(photo, **{k: p[k] for k in keys if k in p})


def write_frames(photo_path: Path, out: Path) -> dict:
    """Writes every frame as OUT/<name>.png and OUT/frames.json (the list of static and sequence frames with
    their placement); returns that index."""
    photo = cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise SystemExit(f"face_frames: cannot read {photo_path}; run `make mediapipe-models` first")
    index = {"version": VERSION, "width": WIDTH, "height": HEIGHT, "static": static_params(),
             "sequence": sequence_params()}
    out.mkdir(parents=True, exist_ok=True)
    for p in index["static"] + index["sequence"]:
        cv2.imwrite(str(out / f"{p['name']}.png"), render(photo, p))
    (out / "frames.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/face_frames.py", description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--photo", default=".models/astronaut.png")
    args = ap.parse_args(argv)
    index = write_frames(Path(args.photo), Path(args.out))
    print(f"face_frames: {len(index['static'])} static + {len(index['sequence'])} sequence frames in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
