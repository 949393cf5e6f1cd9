"""`edgevit target`: one artifact on one emulated core: instructions per inference and agreement of
its aarch64 outputs with the host's on the export's sample pack (the same preprocessing as the device,
through the contract)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.card import SAMPLE_PACK, card_arithmetic, check_artifact, read_card
from contract.errors import UserError
from contract.images import resize_to_model
from contract.quant import dequantize_output, quantize_input
from device_sim.arm.cores import get_core
from device_sim.arm.runner import ArmEnv, instructions_per_inference, run_outputs

__all__ = ["target_report"]


def _inputs(card: dict, pack: Path, n: int) -> np.ndarray:
    """The first n sample-pack images as model inputs (N, *input shape), exactly as the device feeds them."""
    if not pack.is_file():
        raise UserError(f"sample pack {pack} not found; the target check runs the export's samples.npz "
                        "(or pass --samples PATH)")
    from device_sim.sources.synthetic import sample_images

    images = sample_images(pack)[:n]
    spec = card["input"]
    _, h, w, _ = spec["shape"]
    return np.stack([quantize_input(resize_to_model(im, w, h, spec.get("resize"))[None], spec) for im in images])


def _host_outputs(card_path: Path, inputs: np.ndarray) -> np.ndarray:
    from device_sim.model import DeployedModel

    model = DeployedModel.load(card_path, threads=1)
    return np.concatenate([model.invoke(x).copy() for x in inputs])


def _projections(instructions: float, core: str, arithmetic: str) -> dict:
    """Projected latency on every built-in profile whose device has this core (and per GHz, 1 thread)."""
    from device_sim.arm.projection import cpi, load_calibration, on_profiles, project_ms

    cal = load_calibration()
    return {"profiles": on_profiles(instructions, core, arithmetic, cal),
            "per_ghz_one_thread_ms": project_ms(instructions, core, 1.0, 1, cal, arithmetic=arithmetic),
            "cpi": cpi(core, arithmetic, cal), "arithmetic": arithmetic, "parallel_fraction": cal["parallel_fraction"],
            "calibration_loo_median_abs_error": cal["loo_median_abs_error"],
            "note": "projected = instructions x CPI(core kind, arithmetic) / clock / thread speedup "
                    "(device_sim/arm/projection.py); not measured on a device"}


def target_report(env: ArmEnv, artifact: str | Path, *, cpu: str, samples: Path | None = None,
                  fidelity_images: int = 100, invokes: int = 5) -> dict:
    card, card_path = read_card(artifact)
    tflite = check_artifact(card, card_path)
    core = get_core(cpu)
    inputs = _inputs(card, Path(samples or card_path.parent.parent / SAMPLE_PACK), fidelity_images)
    host_raw = _host_outputs(card_path, inputs)
    arm_raw = run_outputs(env, core, tflite, inputs)
    host, arm = (dequantize_output(r, card["output"]).reshape(len(inputs), -1) for r in (host_raw, arm_raw))
    count = instructions_per_inference(env, core, tflite, inputs[:invokes], invokes=invokes)
    return {
        "model": {"name": card.get("name"), "format": card.get("format"), "file": str(tflite),
                  "input": card["input"]["shape"]},
        "core": {"name": core.name, "qemu_cpu": core.qemu_cpu, "cpu_part": core.part,
                 "dot_product": core.dot_product, "note": core.note},
        "instructions": count,
        "fidelity": {"images": len(inputs), "agreement": float(np.mean(host.argmax(1) == arm.argmax(1))),
                     "max_abs_diff": float(np.abs(host - arm).max()),
                     "max_diff_steps": int(np.abs(host_raw.astype(np.int64) - arm_raw.astype(np.int64)).max())
                     if np.issubdtype(host_raw.dtype, np.integer) else None,
                     "identical_outputs": float(np.mean(np.all(host_raw.reshape(len(inputs), -1)
                                                               == arm_raw.reshape(len(inputs), -1), axis=1)))},
        "projection": _projections(count["per_inference"], core.name, card_arithmetic(card)),
        "versions": env.versions(),
        "note": "instructions are counted on qemu's model of the core's ISA (deterministic); emulated wall time "
                "is not device time and is not reported",
    }
