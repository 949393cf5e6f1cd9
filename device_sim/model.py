"""A deployed model as the device sees it: the model card (contract.card) + its .tflite.

`DeployedModel.load(path)` accepts the artifact folder, its model.json or its model.tflite; it reads
and validates the card, verifies the file's sha256, builds the interpreter and prepares the pre- and
post-processing the card describes, all through the contract (the same code export's fidelity check
runs): resize policy, color order, input values and quantization, output dequantization.

A .tflite with no model.json beside it (a model nobody exported) is loaded the same way: its card is
built from the runtime's tensor details plus a `BareModel` description (what only the user knows:
task, labels, the values it expects for pixels 0..255, color order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from contract.card import CARD_NAME, DEFAULT_TASK, bare_card, card_candidate, check_artifact, is_bare_tflite, read_card
from contract.errors import UserError
from contract.files import check_utf8_path
from contract.images import check_resize_policy, model_region, resize_to_model
from contract.quant import dequantize_output, quantize_input
from contract.runtime import interpreter_class
from device_sim.quiet import quiet_stderr

__all__ = ["DeployedModel", "Prediction", "BareModel"]

WARM_REFERENCE_RUNS = 100    # invokes timed for the host reference the slowdown is applied to
WARM_UP_RUNS = 5


@dataclass(frozen=True)
class Prediction:
    label: int              # -1 when the task does not classify
    confidence: float       # top-1 probability; segmentation: the share of the input the mask covers
    probs: np.ndarray       # class probabilities, the mask, or every output value (raw): checked for NaN / inf


@dataclass(frozen=True)
class BareModel:
    """What a bare .tflite cannot say about itself."""
    task: str = "raw"       # a registered task kind (device_sim.tasks)
    labels: tuple[str, ...] = ()
    value_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, float, float] | None = None     # 0..1 units, (x/255 - mean) / std
    std: tuple[float, float, float] | None = None
    color: str = "RGB"
    softmax_applied: bool = False
    resize: dict | None = None    # its input geometry (contract.images); None: center_crop, edgevit's default


class DeployedModel:
    def __init__(self, card: dict, tflite: Path, *, threads: int, made: tuple | None = None):
        """`made` (interpreter, seconds): a bare model's, built to read its tensors; its card is the tflite."""
        from device_sim.tasks import task_named

        self.card, self.tflite, self.threads = card, tflite, threads
        self.card_path = tflite if made else tflite.with_name(CARD_NAME)   # what a card error names
        self.task = task_named(card.get("task", DEFAULT_TASK), str(self.card_path))
        self.labels: list[str] = [str(v) for v in card["labels"]]
        self.input_spec, self.output_spec = card["input"], card["output"]
        _, self.height, self.width, _ = self.input_spec["shape"]
        self.input_dtype = np.dtype(self.input_spec["dtype"])
        self.softmax_applied = bool(self.output_spec.get("softmax_applied", False))
        self.rgb = str(self.input_spec.get("color", "RGB")).upper() == "RGB"
        self.resize = check_resize_policy(self.input_spec.get("resize"))              # the whole frame
        self.crop_resize = check_resize_policy(self.input_spec.get("resize"), crop=True)   # a crop stage's ROI
        self.interpreter, self.init_seconds = made or _make_interpreter(tflite, threads)
        self._in = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()
        self._out = self.output_details[0]
        self.output_specs = card.get("outputs", [self.output_spec])
        actual = (list(self._in["shape"]), np.dtype(self._in["dtype"]))
        if actual != (list(self.input_spec["shape"]), self.input_dtype):
            raise UserError(f"{tflite} takes {actual[0]} {actual[1].name}, but model.json says "
                            f"{self.input_spec['shape']} {self.input_spec['dtype']}: the card does not belong "
                            "to this model")
        self.task.check_model(self)

    @classmethod
    def load(cls, path: str | Path, *, threads: int = 1, bare: BareModel | None = None) -> DeployedModel:
        """`bare` describes a .tflite that has no model.json beside it; with a card it must be None."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UserError(f"threads must be a whole number >= 1, got {threads!r}")
        interpreter_class()   # no runtime installed: say so before reading anything
        path = Path(path)
        if is_bare_tflite(path):
            return cls._load_bare(path, threads, bare or BareModel())
        if bare is not None:
            raise UserError(f"{path} has a model card ({card_candidate(path)}); --task, --labels, --input-range, "
                            "--mean/--std, --color and --resize describe a bare .tflite only")
        card, card_path = read_card(path)
        return cls(card, check_artifact(card, card_path), threads=threads)

    @classmethod
    def _load_bare(cls, tflite: Path, threads: int, bare: BareModel) -> DeployedModel:
        if not tflite.is_file():
            raise UserError(f"{tflite} does not exist")
        made = _make_interpreter(tflite, threads)
        interp = made[0]
        card = bare_card(tflite, interp.get_input_details()[0], interp.get_output_details(), task=bare.task,
                         labels=list(bare.labels), value_range=bare.value_range, mean=bare.mean, std=bare.std,
                         color=bare.color, softmax_applied=bare.softmax_applied, resize=bare.resize)
        return cls(card, tflite, threads=threads, made=made)

    @property
    def size_mb(self) -> float:
        return self.tflite.stat().st_size / 1e6

    # -- the per-frame work ---------------------------------------------------------------------
    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Camera frame (H, W, 3) uint8 BGR -> the model's input tensor, as the card says."""
        image = resize_to_model(frame_bgr, self.width, self.height, self.resize)
        if self.rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return self.to_input(image[None])

    def placement(self, frame_w: int, frame_h: int):
        """Where this model's whole-frame input lies in a frame of that size (device_sim.decode.geometry)."""
        from device_sim.decode.geometry import Placement

        return Placement(frame_w, frame_h, model_region(self.resize, frame_w, frame_h, self.width, self.height),
                         self.resize)

    def to_input(self, images_rgb: np.ndarray) -> np.ndarray:
        """uint8 pixels (1, H, W, 3) at the model size -> the dtype and quantization of the card."""
        return quantize_input(images_rgb, self.input_spec)

    def invoke(self, x: np.ndarray):
        """Every output in the runtime's order, or the first one alone when the task says so (classification)."""
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        if not self.task.all_outputs:
            return self.interpreter.get_tensor(self._out["index"])
        return [self.interpreter.get_tensor(d["index"]) for d in self.output_details]

    def warm_reference(self, x: np.ndarray, runs: int = WARM_REFERENCE_RUNS) -> float:
        """Median seconds of `runs` back-to-back invokes after a warm-up: the host speed the
        simulator's slowdown is applied to."""
        for _ in range(WARM_UP_RUNS):
            self.invoke(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self.invoke(x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def dequantize(self, tensor: np.ndarray, i: int = 0) -> np.ndarray:
        """Output `i`'s tensor as real numbers, as the card says."""
        return dequantize_output(tensor, self.output_specs[i])

    def postprocess(self, raw) -> Prediction:
        """The task's reading of the raw outputs (device_sim.tasks): top-1, a mask, or every value."""
        return self.task.postprocess(self, raw)

    def draw(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """The task's overlay for demo.mp4, inferred again on this frame (after the run, so the
        measurements are not disturbed); None for tasks the annotation text covers."""
        return self.task.overlay(self, frame_bgr)


def _make_interpreter(tflite: Path, threads: int):
    """(interpreter with tensors allocated, seconds it took)."""
    check_utf8_path(tflite, what="model", fix="rename it or its folder")
    t0 = time.perf_counter()
    try:
        with quiet_stderr():   # the runtime announces its delegate on stderr; errors still raise
            interpreter = interpreter_class()(model_path=str(tflite), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise UserError(f"the runtime cannot load {tflite}: {str(e).splitlines()[0][:200]}") from None
    return interpreter, time.perf_counter() - t0
