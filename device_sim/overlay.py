"""Drawing a pipeline's results onto a frame for demo.mp4: each stage's kind (device_sim.tasks) draws what
the stage found, lower layers first (segmentation masks under detection boxes under landmarks)."""

from __future__ import annotations

import numpy as np

__all__ = ["draw_view"]


def draw_view(frame: np.ndarray, view, stages) -> np.ndarray:
    out = frame.copy()
    for st in sorted(stages, key=lambda s: s.task.layer):
        if st.name in view.found:
            out = st.task.draw(out, view.found[st.name])
    return out
