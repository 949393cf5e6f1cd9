"""synthetic (the default source): replays export's sample pack (samples.npz) as a head-mounted
camera would see a card: each sample is rendered into a full frame with slow head sway and per-frame
tremor (at the profile's frame rate), motion blur, sensor noise and auto-exposure swings. Seeded per
frame, so frame i is reproducible on its own (replayable)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from contract.files import path_problem
from device_sim.sources.base import SourceSpec, register_source

__all__ = ["SyntheticCamera", "sample_images"]

HOLD_FRAMES = 12          # frames each sample stays in view
NOISE_SIGMA = 4.0         # sensor noise, in pixel levels
NOISE_MARGIN = 16         # the noise field is this much larger than the frame (random offset per frame)


@register_source("synthetic")
class SyntheticCamera:
    replayable = True

    def __init__(self, spec: SourceSpec, *, hold_frames: int = HOLD_FRAMES):
        self.images, self.labels = _load_pack(spec.samples, spec.labels)
        self.name, self.width, self.height, self.seed, self.hold = "synthetic", spec.width, spec.height, spec.seed, \
            hold_frames
        self.fps = spec.fps
        self.order = np.random.default_rng(spec.seed).permutation(len(self.images))
        self.noise_pos, self.noise_neg = _noise_fields(spec.height, spec.width, spec.seed + 1)
        self.index = 0

    def _render(self, i: int) -> tuple[np.ndarray, int]:
        """Frame i. Exposure and blur are applied to the small sample before it is warped into the frame,
        so a frame costs only two full-frame passes (warp, noise), as a real camera hands over a frame
        without thrashing the caches the model runs in."""
        k = self.order[(i // self.hold) % len(self.order)]
        rng = np.random.default_rng((self.seed, i))
        alpha, beta = float(rng.uniform(0.8, 1.15)), float(rng.uniform(-20, 15))   # auto-exposure swing
        sample = cv2.convertScaleAbs(cv2.cvtColor(self.images[k], cv2.COLOR_RGB2BGR), alpha=alpha, beta=beta)
        if rng.random() < 0.5:                                                       # motion blur
            sample = cv2.blur(sample, (2, 1) if rng.random() < 0.5 else (1, 2))
        side = min(self.width, self.height)
        t = i / self.fps          # seconds since the start: slow head sway plus per-frame tremor
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
        oy, ox = int(rng.integers(NOISE_MARGIN + 1)), int(rng.integers(NOISE_MARGIN + 1))
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


def sample_images(samples: Path) -> np.ndarray:
    """The images of a sample pack (uint8 NHWC RGB), or a UserError naming the file: missing, damaged, not one."""
    return _read_pack(samples)[0]


def _read_pack(samples: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    if (problem := path_problem(samples, "file")) is not None:
        raise UserError(f"sample pack {samples} {problem}; it is the samples.npz that `edgevit export` writes "
                        "beside the model folders (or pass --samples PATH)")
    try:
        with np.load(samples) as pack:
            images = pack["images"]
            labels = pack["labels"].astype(int) if "labels" in pack.files else None
            names = [str(n) for n in pack["class_names"]] if "class_names" in pack.files else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"sample pack {samples} is unreadable ({e}); re-run `edgevit export`") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise UserError(f"sample pack {samples} holds no uint8 RGB images")
    return images, labels, names


def _load_pack(samples: Path, model_labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels, names = _read_pack(samples)
    if labels is None:
        raise UserError(f"sample pack {samples} holds no labels; use the samples.npz of the export, or --samples PATH")
    if len(labels) != len(images) or (names is not None and names != list(model_labels)) \
            or labels.min() < 0 or labels.max() >= len(model_labels):
        raise UserError(f"sample pack {samples} does not belong to this model (its classes differ from the "
                        "model's labels); use the samples.npz of the same export, or --samples PATH")
    return images, labels


def _noise_fields(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One sensor-noise field a little larger than the frame, split into its positive and negative
    parts (uint8, so adding it saturates like a sensor). Drawn in row strips so no large float
    temporary inflates the process's peak memory, which the simulator measures."""
    rng = np.random.default_rng(seed)
    pos = np.empty((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), np.uint8)
    neg = np.empty_like(pos)
    for y in range(0, pos.shape[0], 32):
        n = rng.normal(0.0, NOISE_SIGMA, pos[y:y + 32].shape).astype(np.float32)
        pos[y:y + 32] = np.clip(n, 0, 255)
        neg[y:y + 32] = np.clip(-n, 0, 255)
    return pos, neg
