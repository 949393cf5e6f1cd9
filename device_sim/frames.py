"""Per-frame measurements: `FrameRecord` (one processed frame) and `FrameTable`, where the loop keeps
them. A table of Python objects grows about 0.5 KB per frame (10 MB over a 20k-frame session, measured
by the soak benchmark); the table stores each field in a typed column, in fixed-size chunks, about 60
bytes per frame, and hands rows back as FrameRecords when iterated. A pipeline adds its own per-frame
columns (each stage's time and runs) through `FrameRecord.columns`: float32 columns named on first use,
`<stage>_<kind>` (`stage_column`). A stage whose columns would be the frame's own (a stage named `e2e` writes
`e2e_ms`) is refused when its pipeline file is read (`reserved_stage_names`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from itertools import repeat

import numpy as np

__all__ = ["FrameRecord", "FrameTable", "FRAME_COLUMNS", "STAGE_COLUMN_KINDS", "stage_column",
           "reserved_stage_names"]


@dataclass
class FrameRecord:
    index: int                 # capture index (frames in between were dropped)
    capture_s: float           # capture timestamp, seconds since the loop started
    queue_ms: float            # capture -> processing starts
    preprocess_ms: float       # on the device (device_sim.device): projected, or the host's when not projected
    inference_ms: float
    postprocess_ms: float
    preprocess_host_ms: float  # the same stages as this host measured them
    inference_host_ms: float
    postprocess_host_ms: float
    e2e_ms: float              # capture -> result
    deadline_met: bool
    label: int | None
    pred: int
    confidence: float
    correct: bool | None
    rss_mb: float
    dropped_so_far: int
    valid: bool = True         # the model's output was finite
    columns: dict = field(default_factory=dict)   # a pipeline's own columns: name -> number

    def as_row(self) -> dict:
        row = {n: getattr(self, n) for n in _NAMES}
        return row | self.columns


# column dtypes; None-able ints and bools are stored with -1 for None
_DTYPES = {"index": np.int32, "capture_s": np.float64, "deadline_met": np.bool_, "label": np.int32, "pred": np.int32,
           "correct": np.int8, "dropped_so_far": np.int32, "valid": np.bool_}
_NAMES = [f.name for f in fields(FrameRecord) if f.name != "columns"]
_OPTIONAL = ("label", "correct")
FRAME_COLUMNS = tuple(_NAMES)                          # what every frame writes itself (frames.csv's first columns)
STAGE_COLUMN_KINDS = ("ms", "host_ms", "runs", "found", "bad_regions")   # what a pipeline stage adds per frame
# bad_regions: regions its input stage found that no crop can be taken of (a crop stage; the frame is invalid)


def stage_column(stage: str, kind: str) -> str:
    """The name of a pipeline stage's per-frame column: `kind` is one of STAGE_COLUMN_KINDS."""
    assert kind in STAGE_COLUMN_KINDS, kind
    return f"{stage}_{kind}"


def reserved_stage_names() -> list[str]:
    """The stage names whose columns would overwrite one of the frame's own (e2e -> e2e_ms, preprocess ->
    preprocess_ms and preprocess_host_ms, ...), derived from FrameRecord's fields."""
    return sorted({column[: -len(kind) - 1] for column in FRAME_COLUMNS for kind in STAGE_COLUMN_KINDS
                   if column.endswith("_" + kind) and len(column) > len(kind) + 1})


class FrameTable:
    CHUNK = 4096

    def __init__(self):
        self._chunks: list[dict[str, np.ndarray]] = []
        self._n = 0
        self.extra: list[str] = []   # the pipeline's column names, in first-seen order

    def append(self, rec: FrameRecord) -> None:
        for name in rec.columns:
            if name not in self.extra:   # a new column: NaN in the frames before
                self.extra.append(name)
                for c in self._chunks:
                    c[name] = np.full(self.CHUNK, np.nan, np.float32)
        if self._n == len(self._chunks) * self.CHUNK:
            self._chunks.append({n: np.empty(self.CHUNK, _DTYPES.get(n, np.float32)) for n in _NAMES}
                                | {n: np.full(self.CHUNK, np.nan, np.float32) for n in self.extra})
        chunk, i = self._chunks[-1], self._n % self.CHUNK
        for name in _NAMES:
            value = getattr(rec, name)
            chunk[name][i] = -1 if value is None else value
        for name, value in rec.columns.items():
            chunk[name][i] = value
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([c[name] for c in self._chunks])[: self._n] if self._n else np.empty(0)

    def __getitem__(self, i: int) -> FrameRecord:
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        chunk, j = self._chunks[i // self.CHUNK], i % self.CHUNK
        return _record({n: chunk[n][j].item() for n in _NAMES}, {n: chunk[n][j].item() for n in self.extra})

    def __iter__(self) -> Iterator[FrameRecord]:
        done = 0
        for chunk in self._chunks:
            take = min(self.CHUNK, self._n - done)
            columns = [chunk[n][:take].tolist() for n in _NAMES]
            extra = [chunk[n][:take].tolist() for n in self.extra]
            for values, more in zip(zip(*columns), zip(*extra) if extra else repeat(())):
                yield _record(dict(zip(_NAMES, values)), dict(zip(self.extra, more)))
            done += take


def _record(values: dict, columns: dict) -> FrameRecord:
    for n in _OPTIONAL:
        values[n] = None if values[n] == -1 else values[n]
    values["correct"] = None if values["correct"] is None else bool(values["correct"])
    return FrameRecord(**values, columns=columns)
