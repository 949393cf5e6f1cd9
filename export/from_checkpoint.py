"""Export an `edgevit train` checkpoint: calibration images drawn (seeded) from the checkpoint's TRAIN
split, fidelity measured on its TEST split, a sample pack of test images for the device simulator,
and the checkpoint's provenance in every model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import UserError
from contract.files import sha256_file
from contract.runtime import MAX_THREADS

__all__ = ["CheckpointExport", "export_checkpoint", "DEFAULT_FORMATS"]

DEFAULT_FORMATS = "onnx,fp32,fp16,int8"


@dataclass(frozen=True)
class CheckpointExport:
    checkpoint: Path
    out: Path | None = None          # default artifacts/<run folder name>
    formats: str = DEFAULT_FORMATS
    calib_samples: int = 200         # int8 calibration images from the train split
    samples: int = 500               # max test images in the sample pack
    data: str | None = None          # data set spec, if it moved since training
    threads: int = 0                 # runtime threads for the fidelity check (0 = all cores)
    seed: int = 0                    # seed of the calibration draw and the sample pack
    verbose: bool = True
    force: bool = False              # let --out hold other files (kept); see contract.outputs

    def __post_init__(self):
        if self.calib_samples < 1:
            raise UserError(f"--calib-samples must be at least 1, got {self.calib_samples}")
        if self.samples < 1:
            raise UserError(f"--samples must be >= 1, got {self.samples}")
        if not 0 <= self.threads <= MAX_THREADS:
            raise UserError(f"--threads must be a whole number from 0 to {MAX_THREADS} (0 = all cores), got "
                            f"{self.threads}")

    @property
    def out_dir(self) -> Path:
        ck = Path(self.checkpoint)
        return Path(self.out) if self.out else Path("artifacts") / (ck.parent.name or ck.stem)


def export_checkpoint(job: CheckpointExport) -> dict:
    """Runs the export; returns export.convert's report."""
    import torch

    from edgevit.checkpoint import load_checkpoint, non_finite_weights
    from edgevit.data import load_dataset
    from export.converter import convert
    from export.formats import needs_calibration, parse_formats

    formats = parse_formats(job.formats)
    ckpt = load_checkpoint(job.checkpoint)
    broken = non_finite_weights(ckpt)
    if broken:
        raise UserError(f"checkpoint {job.checkpoint}: the checkpoint holds NaN weights (or infinite ones: "
                        f"{', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}); nothing to export: use a "
                        "checkpoint of a run that did not diverge, or train again")
    spec = job.data or ckpt.dataset.get("spec") or ckpt.dataset.get("name", "digits")
    splits = load_dataset(spec, ckpt.img_size, seed=int(ckpt.dataset.get("split_seed", 0)))
    if tuple(splits.class_names) != tuple(ckpt.class_names):
        raise UserError(f"data set {spec} has classes {list(splits.class_names)[:5]}..., the checkpoint "
                        f"{list(ckpt.class_names)[:5]}...; pass the training data with --data")
    n_train, calibrated = len(splits.train_x), needs_calibration(formats)
    if job.calib_samples > n_train and calibrated:
        raise UserError(f"--calib-samples {job.calib_samples} exceeds the train split ({n_train} images)")
    # the calibration draw comes first; the rest of the (seeded) train order is the pool a failed int8
    # export may recalibrate on (export.repair)
    rng = np.random.default_rng(job.seed)
    first = np.sort(rng.choice(n_train, min(job.calib_samples, n_train), replace=False))
    order = np.concatenate([first, np.setdiff1d(np.arange(n_train), first)])
    calib = splits.train_x[order]
    pack = np.sort(np.random.default_rng(job.seed).permutation(len(splits.test_x))[:job.samples])
    if job.verbose:
        print(f"exporting {ckpt.model_spec['name']} ({job.checkpoint}) -> {job.out_dir}  "
              f"formats: {', '.join(formats)}", flush=True)
    dataset = {**ckpt.dataset, "calibration_split": "train", "calib_samples": len(first), "calib_seed": job.seed}
    return convert(
        ckpt.build_model(), torch.zeros(1, 3, ckpt.img_size, ckpt.img_size), out_dir=job.out_dir, formats=formats,
        mean=ckpt.mean, std=ckpt.std, labels=list(ckpt.class_names),
        calibration=calib if calibrated else None, calib_samples=len(first) if calibrated else None,
        eval_images=splits.test_x, eval_labels=splits.test_y, eval_split="test",
        sample_pack=(splits.test_x[pack], splits.test_y[pack]), name=ckpt.model_spec["name"],
        source={"checkpoint": str(job.checkpoint), "checkpoint_sha256": sha256_file(job.checkpoint),
                "model_spec": ckpt.model_spec, "dataset": dataset},
        threads=job.threads or None, verbose=job.verbose, force=job.force, protect=(Path(job.checkpoint),),
    )
