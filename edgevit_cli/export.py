"""`edgevit export CKPT`: thin CLI over export.from_checkpoint. Exits 3 (contract.errors.EXIT_TARGETS_MISSED)
when any artifact misses a fidelity target; the artifacts and the report are written either way."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgevit_cli.main import seed

INPUTS = ("checkpoint",)   # recovered before they are read (edgevit_cli.main._recover_inputs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from export.from_checkpoint import DEFAULT_FORMATS

    p.add_argument("checkpoint", help="checkpoint from `edgevit train` (e.g. runs/edgevit_xs-digits/best.pt)")
    p.add_argument("--formats", default=DEFAULT_FORMATS, help=f"comma-separated (default {DEFAULT_FORMATS})")
    p.add_argument("--calib-samples", type=int, default=200, help="int8 calibration images from the train split (200)")
    p.add_argument("--out", default=None, help="output folder (default artifacts/<run name>)")
    p.add_argument("--data", default=None,
                   help="data set spec if it moved since training (digits, cifar10:PATH, folder)")
    p.add_argument("--samples", type=int, default=500, help="max test images in the sample pack (500)")
    p.add_argument("--threads", type=int, default=0, help="runtime threads for the fidelity check (0 = all cores)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the calibration draw")
    p.add_argument("--quiet", action="store_true", help="no per-step lines")
    p.add_argument("--force", action="store_true",
                   help="allow an --out that holds other files: they are kept, an earlier export there is replaced")


def run(args: argparse.Namespace) -> int:
    from contract.errors import EXIT_OK, EXIT_TARGETS_MISSED
    from contract.files import check_writable
    from contract.outputs import check_output_folder
    from export.converter import OUTPUT_KIND, expected_files
    from export.formats import parse_formats
    from export.from_checkpoint import CheckpointExport, export_checkpoint

    parse_formats(args.formats)   # a bad --formats fails before the checkpoint is read
    job = CheckpointExport(checkpoint=Path(args.checkpoint), out=Path(args.out) if args.out else None,
                           formats=args.formats, calib_samples=args.calib_samples, samples=args.samples,
                           data=args.data, threads=args.threads, seed=args.seed, verbose=not args.quiet,
                           force=args.force)
    check_writable(job.out_dir)
    check_output_folder(job.out_dir, kind=OUTPUT_KIND, force=args.force, protect=(job.checkpoint,),
                        expect=expected_files(parse_formats(args.formats)))
    report = export_checkpoint(job)
    out = job.out_dir
    print((out / "export_report.md").read_text().split("\n## Steps")[0])
    failed = [f for f, a in report["artifacts"].items() if not a["pass"]]
    print(f"artifacts: {out}  report: {out / 'export_report.md'}  total {report['total_seconds']:.0f} s")
    if failed:
        print(f"FAIL: fidelity targets missed for {', '.join(failed)} (see {out / 'export_report.md'})")
        return EXIT_TARGETS_MISSED
    return EXIT_OK
