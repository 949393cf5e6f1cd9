"""video:PATH (a file, replayable) and camera:INDEX (a live device) through OpenCV's VideoCapture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from contract.files import check_utf8_path, path_problem
from device_sim.quiet import quiet_stderr
from device_sim.sources.base import SourceFailed, SourceSpec, fit, register_source

__all__ = ["VideoSource", "open_camera", "open_video"]


class VideoSource:
    def __init__(self, cap, *, name: str, width: int, height: int, path: Path | None, total: int | None):
        self.cap, self.name, self.width, self.height = cap, name, width, height
        self.path, self.total, self.replayable, self.index = path, total, path is not None, 0
        self.live = path is None   # a camera cannot wait for the simulated device: the loop runs in real time

    def read(self) -> tuple[np.ndarray, int | None] | None:
        with quiet_stderr():   # ffmpeg's own "[mpeg4 @ ...] header damaged" lines: a bad frame is reported in ours
            ok, frame = self.cap.read()
        if not ok:
            if self.path is not None and (self.total is None or self.index >= self.total - 1):
                return None
            raise SourceFailed(f"{self.name} stopped delivering frames after {self.index}")
        self.index += 1
        return fit(frame, self.width, self.height), None

    def replay(self, i: int) -> np.ndarray | None:
        if self.path is None:
            return None
        if not hasattr(self, "_replay"):
            self._replay, self._replay_pos = cv2.VideoCapture(str(self.path)), 0
        with quiet_stderr():
            if i != self._replay_pos:
                self._replay.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = self._replay.read()
        self._replay_pos = i + 1
        return fit(frame, self.width, self.height) if ok else None

    def close(self) -> None:
        self.cap.release()
        if hasattr(self, "_replay"):
            self._replay.release()


@register_source("camera")
def open_camera(spec: SourceSpec) -> VideoSource:
    if not spec.arg.isdigit():
        raise UserError(f"camera index must be a whole number, got {spec.arg!r}")
    index = int(spec.arg)
    with quiet_stderr():   # OpenCV's backends log their own failure; the UserError says it once
        cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise UserError(f"camera index {index} does not open (no such device, or it is busy)")
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
    return VideoSource(cap, name=f"camera:{index}", width=spec.width, height=spec.height, path=None, total=None)


@register_source("video", reads_path=True)
def open_video(spec: SourceSpec) -> VideoSource:
    if not spec.arg:
        raise UserError("video: needs the video file (video:PATH)")
    path = check_utf8_path(spec.arg, what="video", fix="rename the file")
    if (problem := path_problem(path, "file")) is not None:
        raise UserError(f"video {path} {problem}; give video:PATH of a video file")
    with quiet_stderr():
        cap = cv2.VideoCapture(str(path))
        ok, _ = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        raise UserError(f"{path} is not a video OpenCV can decode (mp4/avi/mkv with a common codec)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return VideoSource(cap, name=f"video:{path}", width=spec.width, height=spec.height, path=path, total=total)
