"""`make mediapipe-models`: real AR models nobody here trained, and a portrait to point a camera at.

Downloads two wheels from PyPI with `pip download --no-deps` (nothing is installed) and extracts:
- MediaPipe's .tflite models (face detection, face landmarks, palm detection, hand landmarks, selfie
  segmentation, pose detection) from the mediapipe 0.10.14 wheel. Newer mediapipe wheels (1.x) no
  longer ship the .tflite files; 0.10.14 is the last one measured here that does.
- `astronaut.png` (a public-domain NASA portrait) from scikit-image's wheel, for `--source photo`.
into .models/ (or $EDGEVIT_MODELS_DIR): built in a staging folder and renamed into place, so an
interrupted run leaves nothing half-written; a second run finds everything and does nothing.

    python scripts/fetch_models.py [--dir .models]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {"mediapipe==0.10.14": "mediapipe-0.10.14-", "scikit-image==0.24.0": "scikit_image-0.24.0-"}
MEDIAPIPE = {   # wheel path -> file in .models/mediapipe
    f"mediapipe/modules/{m}.tflite": f"{m.split('/')[-1]}.tflite" for m in (
        "face_detection/face_detection_short_range", "face_landmark/face_landmark",
        "palm_detection/palm_detection_lite", "hand_landmark/hand_landmark_lite",
        "selfie_segmentation/selfie_segmentation", "pose_detection/pose_detection")}
PHOTOS = {"skimage/data/astronaut.png": "astronaut.png"}   # wheel path -> file in .models


def wanted(root: Path) -> list[Path]:
    return [root / "mediapipe" / name for name in MEDIAPIPE.values()] + [root / name for name in PHOTOS.values()]


def _download(requirement: str, prefix: str, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into),
           requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(into.glob(f"{prefix}*.whl"))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise SystemExit(f"mediapipe-models: `pip download {requirement}` failed ({last}); PyPI must be reachable")
    return found[-1]


def _without_icc(png: bytes) -> bytes:
    """The PNG without its iCCP chunk: libpng warns about this photo's colour profile on every read."""
    out, pos = [png[:8]], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        chunk = png[pos:pos + 12 + length]
        if chunk[4:8] != b"iCCP":
            out.append(chunk)
        pos += 12 + length
    return b"".join(out)


def fetch(root: Path) -> None:
    if all(p.is_file() for p in wanted(root)):
        print(f"mediapipe-models: already in {root}")
        return
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        tmp = Path(tmp)
        stage = tmp / "stage"
        (stage / "mediapipe").mkdir(parents=True)
        if not all((root / "mediapipe" / name).is_file() for name in MEDIAPIPE.values()):
            mp = _download("mediapipe==0.10.14", WHEELS["mediapipe==0.10.14"], tmp)
            with zipfile.ZipFile(mp) as z:
                for member, name in MEDIAPIPE.items():
                    (stage / "mediapipe" / name).write_bytes(z.read(member))
        if not all((root / name).is_file() for name in PHOTOS.values()):
            sk = _download("scikit-image==0.24.0", WHEELS["scikit-image==0.24.0"], tmp)
            with zipfile.ZipFile(sk) as z:
                for member, name in PHOTOS.items():
                    (stage / name).write_bytes(_without_icc(z.read(member)))
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                dest = root / path.relative_to(stage)
                if dest.exists():
                    continue   # never replace a file already there (ours from an earlier run, or a user's)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)   # each file appears whole
    print(f"mediapipe-models: {len(MEDIAPIPE)} models in {root / 'mediapipe'}, photos "
          f"{', '.join(str(root / n) for n in PHOTOS.values())}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/fetch_models.py", description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=os.environ.get("EDGEVIT_MODELS_DIR") or ".models")
    fetch(Path(p.parse_args(argv).dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
