"""Runs INSIDE the emulated aarch64 Python, with the project's folder on its path: the simulator's own
per-frame pre- and post-processing code (device_sim.model, device_sim.stages: OpenCV and numpy) on a
frame of the camera's size, framed by marks for the counting plugin (device_sim/arm/insn_count.c).

    python3.11 prepost_guest.py REQUEST.json

REQUEST: {"invokes": K, "units": [{"card": the model card, "tflite": path, "frame": [width, height],
"stage": null | {"pipeline": path, "name": stage name}}, ...]}. For each unit the model is loaded, its
preprocessing and postprocessing run once (warm-up), then three marks frame K preprocessings of the
frame and K postprocessings of the model's outputs on it: (mark 2 - mark 1) / K and (mark 3 - mark 2) / K
are the instructions of one. A pipeline stage is the stage's own work: a crop stage crops (warpAffine)
a square around the frame's centre; its decoding is the stage's. The frame is uniform gray (128): the
count does not depend on what the camera sees, except that decoding a detector's output finds nothing
to suppress on it (the work that grows with the detections found is not in the count).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

MARK = 0x6564676576697400   # device_sim/arm/insn_count.c: MARK_MAGIC
GRAY = 128


def _mark() -> None:
    try:
        os.lseek(-1, MARK, 0)
    except OSError:
        pass


def work(unit: dict):
    """(prepare(frame) -> model input, model, finish(raw) -> result) of one unit, as the simulator runs it."""
    from device_sim.model import DeployedModel

    model = DeployedModel(unit["card"], Path(unit["tflite"]), threads=1)
    if not unit.get("stage"):
        return model.preprocess, model, model.postprocess
    from device_sim.decode.geometry import Roi
    from device_sim.pipelines import load_pipeline
    from device_sim.stages import UNTIMED, Stage

    spec = load_pipeline(unit["stage"]["pipeline"])
    stage = Stage(next(s for s in spec.stages if s.name == unit["stage"]["name"]), model, UNTIMED)
    if not stage.spec.on_crops:
        return model.preprocess, model, stage.finish
    w, h = unit["frame"]
    side = min(w, h) / 2
    roi = Roi(w / 2, h / 2, side, side, 0.0)
    return (lambda frame: stage._crop(frame, roi)), model, stage.finish


def main(path: str) -> int:
    import cv2

    cv2.setNumThreads(1)    # one thread: the plugin's inline counter is exact for one guest thread only
    req = json.loads(open(path).read())
    k = int(req["invokes"])
    for unit in req["units"]:
        prepare, model, finish = work(unit)
        w, h = unit["frame"]
        frame = np.full((h, w, 3), GRAY, np.uint8)
        raw = model.invoke(prepare(frame))
        finish(raw)
        _mark()
        for _ in range(k):
            prepare(frame)
        _mark()
        for _ in range(k):
            finish(raw)
        _mark()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
