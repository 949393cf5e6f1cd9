"""classification: the first output holds one score per label; top-1 with its probability (softmax unless
the card says it is applied). An export's card without a `task` is a classifier."""

from __future__ import annotations

import numpy as np

from device_sim.tasks import register_task
from device_sim.tasks.base import Task

__all__ = ["Classification"]


class Classification(Task):
    name = "classification"
    standalone = True
    uses_labels = True
    all_outputs = False            # invoke returns the first output: (1, classes)

    def check_model(self, model) -> None:
        from contract.card import card_error

        if not model.labels:
            raise card_error(model.card_path, "labels is empty (a classifier needs its class names)")
        scores = int(np.prod(model.output_details[0]["shape"][1:]))
        if scores != len(model.labels):   # an export's card names its model.json, a bare model its options
            raise card_error(model.card_path, f"{model.tflite.name} outputs {scores} scores but has "
                                              f"{len(model.labels)} labels")

    def postprocess(self, model, raw):
        from device_sim.model import Prediction

        logits = model.dequantize(raw[0], 0)   # raw: the first output alone, (1, classes)
        if model.softmax_applied:
            probs = logits
        else:
            e = np.exp(logits - logits.max())
            probs = e / e.sum()
        top = int(probs.argmax())
        return Prediction(top, float(probs[top]), probs)

    def caption(self, model, rec) -> str:
        if rec.pred < 0:
            return super().caption(model, rec)
        text = f"pred {model.labels[rec.pred]}  {100 * rec.confidence:.0f}%"
        if rec.label is not None:
            text += f"  (truth {model.labels[rec.label]})"
        return text


register_task(Classification())
