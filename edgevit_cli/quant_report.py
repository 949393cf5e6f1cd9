"""`edgevit quant-report EXPORT_DIR`: the int8 debugger (export.quant_debug) on an export folder."""

from __future__ import annotations

import argparse
from pathlib import Path

OUTPUT_KIND = "quant-report"
OUTPUT_FILES = ("quant_report.json", "quant_report.png")


INPUTS = ("export_dir",)   # recovered before they are read (edgevit_cli.main._recover_inputs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("export_dir", help="a folder written by `edgevit export` (model.onnx, int8/, samples.npz)")
    p.add_argument("--images", type=int, default=32, help="images from its sample pack to compare on (default 32)")
    p.add_argument("--top", type=int, default=15, help="rows of the table to print (default 15)")
    p.add_argument("--out", default=None,
                   help="folder for quant_report.json and .png (default: EXPORT_DIR-quant-report beside it)")
    p.add_argument("--force", action="store_true", help="allow an --out that holds other files (they are kept)")


def _check(root: Path, images: int, top: int) -> None:
    from contract.errors import UserError

    if not root.is_dir():
        raise UserError(f"{root} is not a folder; give the folder `edgevit export` wrote (with model.onnx and int8/)")
    for need, why in (("model.onnx", "the float reference"), ("int8/model.tflite", "the int8 model"),
                      ("samples.npz", "the images")):
        if not (root / need).is_file():
            raise UserError(f"{root / need} not found ({why}); export with formats including onnx and int8, "
                            "e.g. `edgevit export CKPT --formats onnx,fp32,int8`")
    if images < 1 or top < 1:
        raise UserError(f"--images and --top must be >= 1, got {images} and {top}")


def run(args: argparse.Namespace) -> int:
    from contract.files import write_json
    from contract.outputs import check_output_folder, discard, folder_lock, make_staging, publish, resolve_out
    from export.quant_debug import plot, quant_report, table

    root = resolve_out(args.export_dir, option="EXPORT_DIR")
    _check(root, args.images, args.top)
    out = resolve_out(args.out) if args.out else root.with_name(f"{root.name}-quant-report")
    check_output_folder(out, kind=OUTPUT_KIND, force=args.force, protect=(root,), expect=OUTPUT_FILES)
    with folder_lock(out, what="quant report"):
        bar = _bar(args.images)
        report = quant_report(root, num_images=args.images, progress=lambda i, n: bar.update(1) if bar else None)
        if bar is not None:
            bar.close()
        print(table(report, args.top))
        staging = make_staging(out)
        try:
            write_json(staging / "quant_report.json", report)
            plotted = _have_matplotlib()
            if plotted:
                plot(report, staging / "quant_report.png", f"{root.name}: int8 vs float, per layer", args.top)
        except BaseException:
            discard(staging)
            raise
        publish(staging, out, kind=OUTPUT_KIND, force=args.force)
    written = " and ".join(str(out / f) for f in OUTPUT_FILES[:1 + plotted])
    print(f"{report['seconds']:.1f} s; wrote {written}")
    return 0


def _have_matplotlib() -> bool:
    """quant_report.png needs matplotlib, an optional library: without it the plot is skipped, with a note."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        print("note: quant_report.png skipped: matplotlib is not installed (pip install matplotlib)")
        return False


def _bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="image", leave=False, disable=None)
