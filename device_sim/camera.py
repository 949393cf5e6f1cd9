"""Camera sources. Every source yields BGR uint8 frames (OpenCV's convention) of the profile's size
and, where known, the ground-truth label index of each frame.

- synthetic (default): replays export's sample pack (samples.npz) as a head-mounted camera would see
  a card: the sample is rendered into a full frame with small motion/scale/rotation jitter, motion
  blur, sensor noise and exposure changes. Seeded per frame, so frame i is reproducible on its own.
- video:PATH, camera:INDEX (OpenCV VideoCapture) and folder:PATH (images, sorted; labels from
  root/<label>/ subfolders when they name the model's labels).
A source that cannot open raises SimError; one that ends returns None from read(); one that fails
mid-stream raises SourceFailed, and the loop reports it with the frames processed so far.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device_sim.errors import SimError
from device_sim.quiet import quiet_stderr

__all__ = ["SourceFailed", "SyntheticCamera", "VideoSource", "FolderSource", "open_source"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SourceFailed(RuntimeError):
    """The source stopped delivering frames before its end."""


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class SyntheticCamera:
    replayable = True

    def __init__(self, samples: Path, width: int, height: int, *, seed: int = 0, hold_frames: int = 12):
        if not samples.is_file():
            raise SimError(f"sample pack {samples} not found; the synthetic camera replays the samples.npz that "
                           "`edgevit export` writes beside the model folders")
        try:
            pack = np.load(samples)
            self.images, self.labels = pack["images"], pack["labels"].astype(int)
        except (OSError, KeyError, ValueError) as e:
            raise SimError(f"sample pack {samples} is unreadable ({e}); re-run `edgevit export`") from None
        if self.images.ndim != 4 or len(self.images) == 0:
            raise SimError(f"sample pack {samples} holds no images")
        self.name, self.width, self.height, self.seed, self.hold = "synthetic", width, height, seed, hold_frames
        self.order = np.random.default_rng(seed).permutation(len(self.images))
        # One sensor-noise field a little larger than the frame; each frame adds it at a random
        # offset (a view, no copy). Drawn in row strips so no large float temporary inflates the
        # process's peak memory, which the simulator measures.
        noise_rng = np.random.default_rng(seed + 1)
        self.noise_pos = np.empty((height + 16, width + 16, 3), np.uint8)
        self.noise_neg = np.empty_like(self.noise_pos)
        for y in range(0, height + 16, 32):
            n = noise_rng.normal(0.0, 4.0, self.noise_pos[y:y + 32].shape).astype(np.float32)
            self.noise_pos[y:y + 32] = np.clip(n, 0, 255)
            self.noise_neg[y:y + 32] = np.clip(-n, 0, 255)
        self.index = 0

    def _render(self, i: int) -> tuple[np.ndarray, int]:
        """Frame i, reproducible on its own. Exposure and blur are applied to the small sample before
        it is warped into the frame, so a frame costs only two full-frame passes (warp, noise): a
        real camera hands over a frame without thrashing the caches the model runs in."""
        k = self.order[(i // self.hold) % len(self.order)]
        rng = np.random.default_rng((self.seed, i))
        alpha, beta = float(rng.uniform(0.8, 1.15)), float(rng.uniform(-20, 15))   # auto-exposure swing
        sample = cv2.convertScaleAbs(cv2.cvtColor(self.images[k], cv2.COLOR_RGB2BGR), alpha=alpha, beta=beta)
        if rng.random() < 0.5:                                                       # motion blur
            sample = cv2.blur(sample, (2, 1) if rng.random() < 0.5 else (1, 2))
        side = min(self.width, self.height)
        t = i / 30.0  # slow head sway plus per-frame tremor
        scale = side / sample.shape[0] * (0.97 + 0.04 * np.sin(0.7 * t) + rng.uniform(-0.02, 0.02))
        angle = 3.0 * np.sin(0.5 * t) + rng.uniform(-1.0, 1.0)
        dx = side * (0.03 * np.sin(0.9 * t) + rng.uniform(-0.01, 0.01))
        dy = side * (0.03 * np.cos(0.6 * t) + rng.uniform(-0.01, 0.01))
        c = sample.shape[0] / 2.0
        m = cv2.getRotationMatrix2D((c, c), angle, scale)
        m[:, 2] += (self.width / 2.0 + dx - c, self.height / 2.0 + dy - c)
        paper = int(np.clip(rng.integers(228, 246) * alpha + beta, 0, 255))
        frame = cv2.warpAffine(sample, m, (self.width, self.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(paper, paper, paper))
        oy, ox = int(rng.integers(17)), int(rng.integers(17))
        window = (slice(oy, oy + self.height), slice(ox, ox + self.width))
        cv2.add(frame, self.noise_pos[window], dst=frame)
        cv2.subtract(frame, self.noise_neg[window], dst=frame)
        return frame, int(self.labels[k])

    def read(self) -> tuple[np.ndarray, int | None] | None:
        frame = self._render(self.index)
        self.index += 1
        return frame

    def replay(self, i: int) -> np.ndarray:
        return self._render(i)[0]

    def close(self) -> None:
        pass


class VideoSource:
    """A video file or a webcam through OpenCV's VideoCapture."""

    def __init__(self, target: str | int, width: int, height: int):
        self.width, self.height = width, height
        if isinstance(target, int):
            self.name, self.replayable = f"camera:{target}", False
            with quiet_stderr():   # OpenCV's backends log their own failure; the SimError says it once
                self.cap = cv2.VideoCapture(target)
            if not self.cap.isOpened():
                raise SimError(f"camera index {target} does not open (no such device, or it is busy)")
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self.total = None
        else:
            path = Path(target)
            if not path.is_file():
                raise SimError(f"video {path} does not exist")
            self.name, self.replayable, self.path = f"video:{path}", True, path
            with quiet_stderr():
                self.cap = cv2.VideoCapture(str(path))
                ok, _ = self.cap.read() if self.cap.isOpened() else (False, None)
            if not ok:
                raise SimError(f"{path} is not a video OpenCV can decode (mp4/avi/mkv with a common codec)")
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.total = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.index = 0

    def read(self) -> tuple[np.ndarray, int | None] | None:
        ok, frame = self.cap.read()
        if not ok:
            if self.total is not None and self.index >= self.total - 1:
                return None
            if self.total is None and self.name.startswith("video:"):
                return None
            raise SourceFailed(f"{self.name} stopped delivering frames after {self.index}")
        self.index += 1
        return _fit(frame, self.width, self.height), None

    def replay(self, i: int) -> np.ndarray | None:
        if not self.replayable:
            return None
        if not hasattr(self, "_replay"):
            self._replay, self._replay_pos = cv2.VideoCapture(str(self.path)), 0
        if i != self._replay_pos:
            self._replay.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = self._replay.read()
        self._replay_pos = i + 1
        return _fit(frame, self.width, self.height) if ok else None

    def close(self) -> None:
        self.cap.release()
        if hasattr(self, "_replay"):
            self._replay.release()


class FolderSource:
    replayable = True

    def __init__(self, root: Path, width: int, height: int, labels: list[str]):
        if not root.is_dir():
            raise SimError(f"image folder {root} does not exist")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SimError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        index = {name: i for i, name in enumerate(labels)}
        self.truth = [index.get(p.parent.name) if p.parent != root else None for p in self.files]
        self.name, self.width, self.height, self.index = f"folder:{root}", width, height, 0

    def _load(self, i: int) -> np.ndarray:
        image = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceFailed(f"cannot read image {self.files[i]}")
        return _fit(image, self.width, self.height)

    def read(self) -> tuple[np.ndarray, int | None] | None:
        if self.index >= len(self.files):
            return None
        frame = self._load(self.index), self.truth[self.index]
        self.index += 1
        return frame

    def replay(self, i: int) -> np.ndarray:
        return self._load(i)

    def close(self) -> None:
        pass


def open_source(spec: str, *, width: int, height: int, samples: Path, labels: list[str], seed: int = 0):
    """synthetic | video:PATH | camera:INDEX | folder:PATH (a bare path or integer is recognised too)."""
    kind, _, arg = spec.partition(":") if spec.split(":", 1)[0] in ("video", "camera", "folder") else ("", "", spec)
    if spec == "synthetic":
        return SyntheticCamera(samples, width, height, seed=seed)
    if kind == "camera" or (not kind and spec.isdigit()):
        index = arg if kind else spec
        if not index.isdigit():
            raise SimError(f"camera index must be a whole number, got {index!r}")
        return VideoSource(int(index), width, height)
    path = Path(arg if kind else spec)
    if kind == "folder" or (not kind and path.is_dir()):
        return FolderSource(path, width, height, labels)
    if kind == "video" or path.suffix or path.exists():
        return VideoSource(str(path), width, height)
    raise SimError(f"unknown source {spec!r}; use synthetic, video:PATH, camera:INDEX or folder:PATH")
