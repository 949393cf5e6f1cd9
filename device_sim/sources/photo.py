"""photo (or photo:PATH): a camera looking at a real photograph, for models that look for faces,
hands or people rather than at export's sample pack. The frame is a window onto the photo that sways
around its subject, zooms in and out and turns slightly like a head-mounted camera, with auto-exposure swings and sensor
noise, at the profile's frame rate. Seeded per frame, so frame i is reproducible (replayable).

Without a PATH it uses the portrait `make mediapipe-models` extracts from scikit-image's wheel
(`astronaut.png`, in $EDGEVIT_MODELS_DIR or ./.models); nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from contract.files import check_utf8_path, path_problem
from device_sim.sources.base import SourceSpec, register_source
from device_sim.sources.synthetic import NOISE_MARGIN, _noise_fields

__all__ = ["PhotoCamera", "MODELS_DIR_ENV", "models_dir"]

MODELS_DIR_ENV = "EDGEVIT_MODELS_DIR"
DEFAULT_PHOTO = "astronaut.png"
ZOOM_RANGE = (1.0, 1.4)     # how much of the photo the frame shows: 1 = the whole (cropped to the frame's aspect)
SWAY = 0.08                 # the window's centre sways this share of its size around the subject
DEFAULT_FOCUS = (0.44, 0.30)   # the astronaut's face in the default portrait (normalized x, y)


def models_dir() -> Path:
    """EDGEVIT_MODELS_DIR, else ./.models, else the project's .models beside this code (`make mediapipe-models`
    puts them there): a pipeline's models do not depend on the folder a command starts in."""
    if given := os.environ.get(MODELS_DIR_ENV):
        return Path(given)
    here, project = Path(".models"), Path(__file__).resolve().parents[2] / ".models"
    return project if not here.is_dir() and project.is_dir() else here


@register_source("photo", reads_path=True)
class PhotoCamera:
    replayable = True

    def __init__(self, spec: SourceSpec):
        path = check_utf8_path(spec.arg, what="photo", fix="rename the file") if spec.arg else \
            models_dir() / DEFAULT_PHOTO
        if (problem := path_problem(path, "file")) is not None:
            hint = "; give photo:PATH of an image file" if spec.arg else \
                " (run `make mediapipe-models`, which extracts it, or give photo:PATH)"
            raise UserError(f"photo {path} {problem}{hint}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"photo {path} is not an image OpenCV can read")
        self.photo, self.name = image, f"photo:{path}"
        self.focus = DEFAULT_FOCUS if not spec.arg else (0.5, 0.5)   # a user's photo: its centre
        self.width, self.height, self.fps, self.seed = spec.width, spec.height, spec.fps, spec.seed
        self.noise_pos, self.noise_neg = _noise_fields(spec.height, spec.width, spec.seed + 1)
        self.index = 0

    def _matrix(self, rng: np.random.Generator, i: int) -> np.ndarray:
        """The 2x3 affine photo pixels -> frame pixels of frame i (draws the frame's jitter from rng)."""
        t = i / self.fps
        ph, pw = self.photo.shape[:2]
        aspect = self.width / self.height
        base_w = min(pw, ph * aspect)                       # the widest window of the frame's aspect
        zoom = ZOOM_RANGE[0] + (ZOOM_RANGE[1] - ZOOM_RANGE[0]) * (0.5 + 0.5 * np.sin(0.4 * t))
        win_w = base_w / zoom
        win_h = win_w / aspect
        cx = self.focus[0] * pw + SWAY * win_w * np.sin(0.23 * t) + rng.uniform(-1.5, 1.5)
        cy = self.focus[1] * ph + SWAY * win_h * np.sin(0.31 * t + 1.0) + rng.uniform(-1.5, 1.5)
        cx = float(np.clip(cx, win_w / 2, pw - win_w / 2))   # the window stays on the photo where it can
        cy = float(np.clip(cy, min(win_h / 2, ph / 2), max(ph - win_h / 2, ph / 2)))
        angle = 4.0 * np.sin(0.5 * t) + rng.uniform(-0.5, 0.5)
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(self.width / win_w))
        m[:, 2] += (self.width / 2 - cx, self.height / 2 - cy)
        return m

    def to_photo(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N, 2) frame-i pixels -> photo pixels (where on the photograph a model's output landed)."""
        inv = cv2.invertAffineTransform(self._matrix(np.random.default_rng((self.seed, i)), i))
        return np.asarray(points, np.float64) @ inv[:, :2].T + inv[:, 2]

    def _render(self, i: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, i))
        t = i / self.fps
        frame = cv2.warpAffine(self.photo, self._matrix(rng, i), (self.width, self.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        alpha, beta = 0.85 + 0.25 * (0.5 + 0.5 * np.sin(0.17 * t)), float(rng.uniform(-12, 12))   # re-lighting
        frame = cv2.convertScaleAbs(frame, alpha=alpha, beta=beta)
        oy, ox = int(rng.integers(NOISE_MARGIN + 1)), int(rng.integers(NOISE_MARGIN + 1))
        window = (slice(oy, oy + self.height), slice(ox, ox + self.width))
        cv2.add(frame, self.noise_pos[window], dst=frame)
        cv2.subtract(frame, self.noise_neg[window], dst=frame)
        return frame

    def read(self) -> tuple[np.ndarray, int | None] | None:
        frame = self._render(self.index)
        self.index += 1
        return frame, None

    def replay(self, i: int) -> np.ndarray:
        return self._render(i)

    def close(self) -> None:
        pass
