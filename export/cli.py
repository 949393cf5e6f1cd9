"""`edgevit export CKPT`: thin CLI over export.convert() for edgevit checkpoints.

Calibration images are drawn (seeded) from the checkpoint's TRAIN split, fidelity is measured on its
TEST split, and a sample pack of test images is written for the device simulator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_FORMATS = "onnx,fp32,fp16,int8"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint from `edgevit train` (e.g. runs/edgevit_xs-digits/best.pt)")
    p.add_argument("--formats", default=DEFAULT_FORMATS, help=f"comma-separated (default {DEFAULT_FORMATS})")
    p.add_argument("--calib-samples", type=int, default=200, help="int8 calibration images from the train split (200)")
    p.add_argument("--out", default=None, help="output folder (default artifacts/<run name>)")
    p.add_argument("--data", default=None,
                   help="data set spec if it moved since training (digits, cifar10:PATH, folder)")
    p.add_argument("--samples", type=int, default=500, help="max test images in the sample pack (500)")
    p.add_argument("--threads", type=int, default=0, help="runtime threads for the fidelity check (0 = all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw")
    p.add_argument("--quiet", action="store_true", help="no per-step lines")


def run(args: argparse.Namespace) -> int:
    from export.formats import parse_formats

    formats = parse_formats(args.formats)
    if args.calib_samples < 1:
        raise ValueError(f"--calib-samples must be at least 1, got {args.calib_samples}")
    if args.samples < 1 or args.threads < 0:
        raise ValueError("--samples must be >= 1 and --threads >= 0")
    ckpt_path = Path(args.checkpoint)
    out = Path(args.out or f"artifacts/{ckpt_path.parent.name or ckpt_path.stem}")
    _check_writable(out)

    import numpy as np
    import torch

    from edgevit.checkpoint import load_checkpoint
    from edgevit.data import load_dataset
    from export.convert import convert
    from export.sidecar import sha256_file

    ckpt = load_checkpoint(ckpt_path)
    spec = args.data or ckpt.dataset.get("spec") or ckpt.dataset.get("name", "digits")
    splits = load_dataset(spec, ckpt.img_size, seed=int(ckpt.dataset.get("split_seed", 0)))
    if tuple(splits.class_names) != tuple(ckpt.class_names):
        raise ValueError(f"data set {spec} has classes {list(splits.class_names)[:5]}..., the checkpoint "
                         f"{list(ckpt.class_names)[:5]}...; pass the training data with --data")
    n_train = len(splits.train_x)
    if args.calib_samples > n_train and "int8" in formats:
        raise ValueError(f"--calib-samples {args.calib_samples} exceeds the train split ({n_train} images)")
    rng = np.random.default_rng(args.seed)
    calib = splits.train_x[np.sort(rng.choice(n_train, min(args.calib_samples, n_train), replace=False))]
    pack = np.sort(np.random.default_rng(args.seed).permutation(len(splits.test_x))[:args.samples])
    model = ckpt.build_model()
    print(f"exporting {ckpt.model_spec['name']} ({ckpt_path}) -> {out}  formats: {', '.join(formats)}", flush=True)
    report = convert(
        model, torch.zeros(1, 3, ckpt.img_size, ckpt.img_size), out_dir=out, formats=formats,
        mean=ckpt.mean, std=ckpt.std, labels=list(ckpt.class_names),
        calibration=calib if "int8" in formats else None,
        eval_images=splits.test_x, eval_labels=splits.test_y, eval_split="test",
        sample_pack=(splits.test_x[pack], splits.test_y[pack]), name=ckpt.model_spec["name"],
        source={"checkpoint": str(ckpt_path), "checkpoint_sha256": sha256_file(ckpt_path),
                "model_spec": ckpt.model_spec, "dataset": {**ckpt.dataset, "calibration_split": "train",
                                                           "calib_samples": len(calib), "calib_seed": args.seed}},
        threads=args.threads or None, verbose=not args.quiet,
    )
    print((out / "export_report.md").read_text().split("\n## Steps")[0])
    failed = [f for f, a in report["artifacts"].items() if not a["pass"]]
    if failed:
        print(f"WARNING: fidelity targets missed for {', '.join(failed)} (see {out / 'export_report.md'})")
    print(f"artifacts: {out}  report: {out / 'export_report.md'}  total {report['total_seconds']:.0f} s")
    return 0


def _check_writable(out: Path) -> None:
    from edgevit.commands.train import check_writable

    parent = out.parent
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder; choose another --out")
    check_writable(parent)
