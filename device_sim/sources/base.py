"""The camera-source interface and its registry.

A source yields BGR uint8 frames (OpenCV's convention) of the profile's size and, where known, the
ground-truth label index of each frame. `read()` returns (frame, label or None), or None at the end
of the stream; it raises CorruptFrame for one bad frame (skipped and counted; a malformed frame is
treated the same) and SourceFailed when the source stops delivering before its end (the loop then
reports the frames processed so far, marked partial). A replayable source can render frame i again
after the run (`replay(i)`), which is how demo.mp4 is made without disturbing the measurements.
A source with `live = True` (a camera) delivers frames on the wall clock whatever the loop does, so the
simulator runs it in real time rather than on the device's virtual clock (device_sim.loop); a source
without the attribute is not live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from contract.errors import UserError

__all__ = ["Source", "SourceSpec", "SourceFailed", "CorruptFrame", "SOURCES", "register_source", "open_source", "fit"]


class SourceFailed(RuntimeError):
    """The source stopped delivering frames before its end."""


class CorruptFrame(RuntimeError):
    """One frame could not be delivered (an unreadable image, a broken decode); the loop skips it,
    counts it, and ends the run as partial only after too many in a row."""


@runtime_checkable
class Source(Protocol):
    name: str            # shown in reports, e.g. "video:clip.mp4"
    replayable: bool     # can replay(i) render frame i again after the run?

    def read(self) -> tuple[np.ndarray, int | None] | None: ...
    def replay(self, i: int) -> np.ndarray | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """What every source factory is given: the argument after 'kind:' and the run's context."""
    arg: str                  # text after "kind:" ("" for a bare "synthetic")
    width: int                # the profile's camera size
    height: int
    fps: float                # the profile's camera rate (sources that synthesize motion use it)
    samples: Path             # export's sample pack (the synthetic camera replays it)
    labels: list[str]         # the model's labels (folder sources map subfolder names to them)
    seed: int = 0


SOURCES: dict[str, Callable[[SourceSpec], Source]] = {}
PATH_SOURCES: set[str] = set()   # kinds whose argument is a file or folder (an earlier command's output, maybe)


def register_source(kind: str, *, reads_path: bool = False):
    """Class or function decorator: `factory(spec: SourceSpec) -> Source` opens a source of this kind;
    `reads_path`: its argument is a file or folder."""
    def wrap(factory):
        if kind in SOURCES:
            raise ValueError(f"source kind {kind!r} registered twice")
        SOURCES[kind] = factory
        if reads_path:
            PATH_SOURCES.add(kind)
        return factory
    return wrap


def _split(spec: str) -> tuple[str, str]:
    """'kind:arg' -> (kind, arg); a bare integer is a camera, a bare folder a folder, a bare file a video."""
    kind, sep, arg = spec.partition(":")
    if sep and kind in SOURCES:
        return kind, arg
    if spec in SOURCES:
        return spec, ""
    if spec.isdigit():
        return "camera", spec
    path = Path(spec)
    if path.is_dir():
        return "folder", spec
    if path.suffix or path.exists():
        return "video", spec
    raise UserError(f"unknown source {spec!r}; use {', '.join(_kinds())}")


def _kinds() -> list[str]:
    return [k if k == "synthetic" else f"{k}:..." for k in SOURCES]


def _path_of(spec: str) -> str | None:
    """The file or folder a source spec reads: a path kind's argument ('video:clip.mp4'), or a bare spec that is
    neither a kind nor a camera number (which _split takes as a path); None for the others."""
    kind, sep, arg = spec.partition(":")
    if sep and kind in SOURCES:
        return arg if kind in PATH_SOURCES else None
    return None if spec in SOURCES or spec.isdigit() else spec


def open_source(spec: str, *, width: int, height: int, fps: float, samples: Path, labels: list[str],
                seed: int = 0) -> Source:
    from contract.outputs import recover_input

    path = _path_of(spec)
    if path:   # an output a killed command left half replaced goes back before it is read
        recover_input(path, what="simulation")
    kind, arg = _split(spec)
    return SOURCES[kind](SourceSpec(arg=arg, width=width, height=height, fps=fps, samples=Path(samples),
                                    labels=list(labels), seed=seed))


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A frame at the camera's size (sources whose files have another size are resized, not cropped)."""
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
