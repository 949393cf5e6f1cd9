"""folder:PATH: the images under a folder, sorted; ground truth from root/<label>/ subfolders when
their names are the model's labels. Replayable."""

from __future__ import annotations

import cv2
import numpy as np

from contract.errors import UserError
from contract.files import check_utf8_path, path_problem
from contract.images import IMAGE_SUFFIXES
from device_sim.quiet import quiet_stderr
from device_sim.sources.base import CorruptFrame, SourceSpec, fit, register_source

__all__ = ["FolderSource"]


@register_source("folder", reads_path=True)
class FolderSource:
    replayable = True

    def __init__(self, spec: SourceSpec):
        if not spec.arg:
            raise UserError("folder: needs the folder of images (folder:PATH)")
        root = check_utf8_path(spec.arg, what="image folder", fix="rename it")
        if (problem := path_problem(root, "folder")) is not None:
            raise UserError(f"image folder {root} {problem}; give folder:PATH of a folder of images")
        # a folder named like an image is a folder (rglob lists what is in it); special files stay, to be
        # skipped and counted as bad frames
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        if not self.files:
            raise UserError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        index = {name: i for i, name in enumerate(spec.labels)}
        self.truth = [index.get(p.parent.name) if p.parent != root else None for p in self.files]
        self.name, self.width, self.height, self.index = f"folder:{root}", spec.width, spec.height, 0
        self.delivered: list[int] = []

    def _load(self, i: int) -> np.ndarray:
        """The i-th file as a frame. What OpenCV must not see is a bad frame, skipped and counted by the loop:
        a special file (a FIFO would block forever, a device read without end) or a name that is not UTF-8
        (OpenCV crashes on one)."""
        path = self.files[i]
        if not path.is_file():
            what = "a broken symbolic link" if path.is_symlink() else "not a regular file (a FIFO, device or socket)"
            raise CorruptFrame(f"{path} is {what}; skipped")
        try:
            check_utf8_path(path, what="image")
        except UserError as e:
            raise CorruptFrame(f"{e}; skipped") from None
        with quiet_stderr():   # libpng's own "Read Error" line: the bad frame is reported in ours
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CorruptFrame(f"cannot read image {path}")
        return fit(image, self.width, self.height)

    def read(self) -> tuple[np.ndarray, int | None] | None:
        if self.index >= len(self.files):
            return None
        i, self.index = self.index, self.index + 1
        frame = self._load(i)            # a corrupt image raises before it counts as delivered
        self.delivered.append(i)
        return frame, self.truth[i]

    def replay(self, i: int) -> np.ndarray | None:
        """The i-th frame delivered (corrupt images were skipped, so it is not always the i-th file)."""
        return self._load(self.delivered[i]) if i < len(self.delivered) else None

    def close(self) -> None:
        pass
