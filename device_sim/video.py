"""demo.mp4: every processed frame with its prediction, confidence, latency and a budget light.

Rendered after the loop by replaying the source (synthetic frames are reproducible by index, video
files and image folders are re-read), so writing the video never disturbs the measurements.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2

__all__ = ["annotate", "write_video"]


def annotate(frame, rec, budget_ms: float, work):
    """The work's overlay (`work.draw(frame, rec)` -> (image or None, caption)), then the caption, the
    latency and a budget light."""
    drawn, text = work.draw(frame, rec)
    out = frame.copy() if drawn is None else drawn
    ok = rec.e2e_ms <= budget_ms
    h, w = out.shape[:2]
    cv2.rectangle(out, (0, 0), (w, 58), (0, 0, 0), -1)
    cv2.putText(out, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(out, f"{rec.e2e_ms:.1f} ms end-to-end  (budget {budget_ms:g} ms)", (10, 48),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (220, 220, 220), 1, cv2.LINE_AA)
    cv2.circle(out, (w - 24, 29), 12, (0, 200, 0) if ok else (0, 0, 230), -1)
    side = min(h, w)  # the whole-frame models see the center square
    x0, y0 = (w - side) // 2, (h - side) // 2
    cv2.rectangle(out, (x0, y0), (x0 + side - 1, y0 + side - 1), (255, 200, 0), 1)
    return out


def write_video(path: Path, source, records, work, budget_ms: float, fps: float) -> int | None:
    """Returns the number of frames written (0 when the source cannot be replayed; None when OpenCV has no
    video writer for mp4). The work replays the processed frames in order from its initial state (a
    pipeline's tracking decides as it did)."""
    if not records or not getattr(source, "replayable", False):
        return 0
    first = source.replay(records[0].index)
    h, w = first.shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        writer.release()
        tmp.unlink(missing_ok=True)
        return None
    written = 0
    work.reset()
    try:
        for rec in records:
            frame = first if written == 0 else source.replay(rec.index)
            if frame is None:
                break
            writer.write(annotate(frame, rec, budget_ms, work))
            written += 1
    finally:
        writer.release()
    os.replace(tmp, path)
    return written
