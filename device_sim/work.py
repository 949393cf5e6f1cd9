"""What the frame loop runs on each frame: a `Work`. One model (`SingleModel`) or a multi-model
pipeline (device_sim.stages.Pipeline) both take a camera frame and return an `Outcome`: the
device's and the host's times, the prediction the frame table records, and any columns of their own.
They also draw their results onto a replayed frame for demo.mp4 (`reset()` then `draw()` frame by frame,
after the run: the measurements are never disturbed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device_sim.clock import StageTimes, run_timed

__all__ = ["Outcome", "SingleModel"]


@dataclass
class Outcome:
    times: StageTimes               # summed over every model invocation of the frame
    pred: int                       # class index, or -1 when the work does not classify
    confidence: float
    valid: bool                     # every output finite
    columns: dict = field(default_factory=dict)   # extra per-frame columns (a pipeline's stages)


class SingleModel:
    """One DeployedModel timed by one DeviceTiming."""

    def __init__(self, model, timing):
        self.model, self.timing = model, timing
        self.labels = model.labels
        self.name, self.format = model.card.get("name", "?"), model.card.get("format", "?")
        self.size_mb, self.tflites = model.size_mb, [model.tflite]

    def model_report(self) -> dict:
        card = self.model.card
        return {k: card.get(k) for k in ("name", "format", "task", "file", "sha256", "labels", "input", "output",
                                         "outputs")} | {"path": str(self.model.tflite), "size_mb": self.size_mb,
                                                        "init_ms": self.model.init_seconds * 1e3}

    def device_report(self, recs) -> dict:
        """How the device's latency was obtained, and on how many frames the host was slower than it."""
        slower = 0 if self.timing.inference_ms is None else \
            sum(r.inference_host_ms > self.timing.inference_ms for r in recs)
        return {**self.timing.as_dict(), "host_slower_frames": slower}

    def process(self, frame: np.ndarray) -> Outcome:
        pred, times = run_timed(self.model, self.timing, lambda: self.model.preprocess(frame), self.model.postprocess)
        valid = bool(np.isfinite(pred.probs).all())
        return Outcome(times, pred.label, pred.confidence if valid else float("nan"), valid)

    def reset(self) -> None:
        pass

    def draw(self, frame: np.ndarray, rec) -> tuple[np.ndarray | None, str]:
        """(overlay or None, caption) for demo.mp4."""
        return self.model.draw(frame), self.model.task.caption(self.model, rec)
