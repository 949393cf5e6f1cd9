"""segmentation: the first output is a per-pixel foreground probability over the model input, (1, h, w),
(1, h, w, 1) or (1, h, w, 2) class scores (softmax, channel 1 = foreground); the confidence is the share
of the input it covers. demo.mp4 tints the foreground green, the mask put back into the frame through the
inverse of the model's input geometry (device_sim.decode.geometry.Placement)."""

from __future__ import annotations

import numpy as np

from device_sim.tasks import register_task
from device_sim.tasks.base import Task

__all__ = ["Segmentation", "MASK_THRESHOLD", "tint"]

MASK_THRESHOLD = 0.5         # a pixel is foreground above this probability


def tint(frame: np.ndarray, full: np.ndarray) -> np.ndarray:
    """`full` (frame height, width): the mask in frame pixels (Placement.mask); green where it exceeds the
    threshold."""
    green = np.zeros_like(frame)
    green[..., 1] = 255
    alpha = (0.45 * (full > MASK_THRESHOLD))[..., None]
    return (frame * (1 - alpha) + green * alpha).astype(np.uint8)


def _mask(model, raw) -> np.ndarray:
    out = model.dequantize(raw[0], 0)[0]
    if out.ndim == 3 and out.shape[-1] == 2:
        e = np.exp(out - out.max(-1, keepdims=True))
        return (e[..., 1] / e.sum(-1)).astype(np.float32)
    return out.reshape(out.shape[0], out.shape[1]).astype(np.float32)


class Segmentation(Task):
    name = "segmentation"
    standalone = True
    layer = 0                      # under the boxes and points of other stages

    def check_model(self, model) -> None:
        """The first output must be a mask over the model's input: (1, h, w), (1, h, w, 1) or (1, h, w, 2), its
        sides in the input's proportions."""
        from contract.card import card_error

        shape = list(model.output_specs[0]["shape"])
        ok = len(shape) in (3, 4) and shape[0] == 1 and (len(shape) == 3 or shape[3] in (1, 2)) and min(shape[1:3]) >= 1
        if not ok or abs(shape[1] / shape[2] - model.height / model.width) > 0.05 * model.height / model.width:
            raise card_error(model.card_path, f"task segmentation needs a mask over the {model.width}x{model.height} "
                                              f"input as the first output, (1, h, w[, 1 or 2]) with h:w as "
                                              f"{model.height}:{model.width}, but it is {tuple(shape)}")

    def postprocess(self, model, raw):
        from device_sim.model import Prediction

        mask = _mask(model, raw)
        return Prediction(-1, float((mask > MASK_THRESHOLD).mean()), mask)

    def overlay(self, model, frame: np.ndarray) -> np.ndarray:
        """Inferred again on this frame (after the run, so the measurements are not disturbed)."""
        place = model.placement(frame.shape[1], frame.shape[0])
        return tint(frame, place.mask(_mask(model, model.invoke(model.preprocess(frame)))))

    def caption(self, model, rec) -> str:
        return f"mask covers {100 * rec.confidence:.0f}% of the input"

    def shown(self, result, place):
        """The prediction with its mask in frame pixels, through the inverse of the model's input geometry."""
        from dataclasses import replace

        return replace(result, probs=place.mask(result.probs))

    def draw(self, frame: np.ndarray, shown) -> np.ndarray:
        return tint(frame, shown.probs)


register_task(Segmentation())
