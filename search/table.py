"""The latency table on the target: instructions per steady-state int8 inference of every part a design of
the space can contain (search.space.all_parts), counted once per core on the aarch64 runtime under qemu
(device_sim.arm) and kept in a JSON file, so a candidate's projected latency is known in milliseconds
of computer time, before any training. EfficientFormer's latency lookup table, but deterministic.

    predicted(design) = sum over its parts of table[part] - (parts - 1) x table[overhead]

Each part was counted as a model of its own: one interpreter invoke and one XNNPACK dispatch that a
whole network pays once; the overhead entry (a trivial one-op model) takes them back out.
`validate` compares the prediction with whole-model counts of random designs (BENCHMARKS.md "Search").

    python -m search.table build [--img 64,224] [--cores cortex-a53,cortex-a55,cortex-a76] [--work DIR]
    python -m search.table validate [--designs 10] [--img 64] [--cores cortex-a53,cortex-a55]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from contract.errors import UserError
from contract.files import to_json, write_json
from contract.outputs import check_output_file, publish_file
from edgevit.models.efficientformer import SIZES
from edgevit.sizes import check_img_size
from search.space import CHOICES, Design, Part, all_parts, design_from_params

__all__ = ["TABLE", "SCHEMA", "load_table", "predict", "build", "validate", "random_design", "DEFAULT_CORES",
           "GLYPH_CLASSES", "count_models", "model_count", "MODELS", "TABLE_FORMAT"]

TABLE = Path(__file__).with_name("latency_table.json")
SCHEMA = "edgevit.latency-table/1"
DEFAULT_CORES = ("cortex-a53", "cortex-a55", "cortex-a76")
TABLE_FORMAT = "int8"  # the export format (export.formats) every counted part and whole model is built in
GLYPH_CLASSES = 62     # the proxy task (edgevit.data.glyphs); the 224 rows use ImageNet's 1000
# whole models counted beside the parts: the budget's baselines and the reference points of a search
MODELS = ("mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv1_100",
          *(f"edgevit_{size}" for size in SIZES))   # every registered family member, the searched ones too
INVOKES = 2            # steady invokes counted per part (counts are deterministic: 2 shows they repeat)
BATCH = 24             # parts per guest run


def _classes(img: int) -> int:
    return 1000 if img == 224 else GLYPH_CLASSES


def load_table(path: Path = TABLE) -> dict:
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"latency table {path} is missing or unreadable ({e}); run `make latency-table`") from None
    if table.get("schema") != SCHEMA:
        raise UserError(f"{path} is not an {SCHEMA} file; run `make latency-table` to rebuild it")
    return table


def predict(design: Design, img: int, core: str, table: dict, classes: int | None = None) -> float:
    """Predicted instructions per inference of the design's int8 network on `core`."""
    counts = table["cores"].get(core)
    if counts is None:
        raise UserError(f"the latency table has no counts for {core} (it has {', '.join(table['cores'])}); "
                        f"run `make latency-table`")
    parts = design.parts(img, classes or _classes(img))
    missing = [p.key for p in parts if p.key not in counts]
    if missing:
        raise UserError(f"the latency table lacks {missing[0]} on {core} (input size {img}?); it covers the sizes "
                        f"{', '.join(map(str, table['img_sizes']))}; run `make latency-table`")
    overhead = counts[Part("overhead", img).key]
    return sum(counts[p.key] for p in parts) - (len(parts) - 1) * overhead


def model_count(name: str, img: int, core: str, table: dict) -> float:
    """Instructions per inference of a whole registered model (MODELS) at this size on `core`."""
    try:
        return table["cores"][core][f"{img}/model/{name}"]
    except KeyError:
        raise UserError(f"the latency table has no count of {name} at {img}x{img} on {core} (it counts "
                        f"{', '.join(MODELS)}); run `make latency-table`") from None


def _input(path: Path) -> np.ndarray:
    from contract.runtime import interpreter_class

    d = interpreter_class()(model_path=str(path)).get_input_details()[0]
    rng = np.random.default_rng(0)
    info = np.iinfo(d["dtype"])
    return rng.integers(info.min, info.max + 1, (1, *d["shape"])).astype(d["dtype"])


def count_models(paths: list[Path], cores: tuple[str, ...], *, log=print) -> dict[str, list[float]]:
    """Instructions per inference of each .tflite on each core, BATCH models per guest run."""
    from device_sim.arm.cores import get_core
    from device_sim.arm.runner import find_env, instructions_per_segment

    env = find_env(None)
    out: dict[str, list[float]] = {}
    for core in cores:
        out[core] = []
        for i in range(0, len(paths), BATCH):
            chunk = paths[i:i + BATCH]
            t0 = time.perf_counter()
            out[core] += instructions_per_segment(env, get_core(core), [(p, _input(p)) for p in chunk],
                                                  invokes=INVOKES)
            log(f"  counted {i + len(chunk)}/{len(paths)} on {core} ({time.perf_counter() - t0:.0f} s)")
    return out


def build(img_sizes: tuple[int, ...], cores: tuple[str, ...], work: Path, *, path: Path = TABLE, log=print) -> dict:
    """Exports every part (reused from `work` when already there), counts it on every core, writes `path`.
    Resumable: parts already in the table at `path` for a core are not counted again."""
    from device_sim.arm.runner import find_env
    from search.parts import export_model, export_part

    table = json.loads(path.read_text()) if path.is_file() else {}   # resume: what is counted stays
    if table.get("schema") != SCHEMA:
        table = {"schema": SCHEMA, "cores": {}, "img_sizes": []}
    t0 = time.perf_counter()
    for img in img_sizes:
        parts = all_parts(img, _classes(img))
        todo = [p for p in parts if any(p.key not in table["cores"].get(c, {}) for c in cores)]
        log(f"latency table {img}x{img}: {len(parts)} parts, {len(todo)} to export and count")
        paths = []
        for k, part in enumerate(todo, 1):
            t = time.perf_counter()
            paths.append(export_part(part, work / part.key.replace("/", "_")))
            log(f"  exported {k}/{len(todo)} {part.key} ({time.perf_counter() - t:.0f} s)")
        models = [m for m in MODELS if any(f"{img}/model/{m}" not in table["cores"].get(c, {}) for c in cores)]
        keys = [p.key for p in todo] + [f"{img}/model/{m}" for m in models]
        for m in models:
            paths.append(export_model(m, img, _classes(img), work / f"{img}_model_{m}"))
            log(f"  exported whole {m}")
        counted = count_models(paths, cores, log=log)
        if path.is_file():   # another build may have written meanwhile (one per size): merge, never drop its counts
            on_disk = json.loads(path.read_text())
            for core, counts in on_disk.get("cores", {}).items():
                table["cores"][core] = {**counts, **table["cores"].get(core, {})}
            table["img_sizes"] = sorted(set(table["img_sizes"]) | set(on_disk.get("img_sizes", [])))
        for core, counts in counted.items():
            table["cores"].setdefault(core, {}).update(dict(zip(keys, counts)))
        table["img_sizes"] = sorted(set(table.get("img_sizes", [])) | {img})
        table.update(runtime=find_env(None).versions(), invokes=INVOKES, choices=CHOICES,
                     minutes=table.get("minutes", 0.0) + (time.perf_counter() - t0) / 60)
        t0 = time.perf_counter()
        write_json(path, table)
    return table


def random_design(rng: random.Random) -> Design:
    return design_from_params({k: rng.choice(v) for k, v in CHOICES.items()})


def validate(n: int, img: int, cores: tuple[str, ...], work: Path, *, seed: int = 0, table: dict | None = None,
             log=print) -> list[dict]:
    """n random designs of the space: exported whole, counted, compared with the table's prediction. A design
    the converter cannot make full int8 (it left an op in float) is recorded with its reason and replaced by
    the next random design: its count would not be an int8 network's."""
    from export.tflite_convert import NotConvertibleError
    from search.parts import export_design

    table = table or load_table()
    rng = random.Random(seed)
    designs, paths, skipped = [], [], []
    while len(designs) < n and len(skipped) < 5 * n:
        d = random_design(rng)
        try:
            paths.append(export_design(d, img, _classes(img), work / f"whole-{img}-{d.name}"))
        except NotConvertibleError as e:
            skipped.append({"design": d.name, "img": img, "skipped": str(e)})
            log(f"  whole design {d.name} is not full int8 ({e}); drawing another")
            continue
        designs.append(d)
        log(f"  exported whole design {len(designs)}/{n} {d.name}")
    counts = count_models(paths, cores, log=log)
    rows = []
    for i, d in enumerate(designs):
        for core in cores:
            pred = predict(d, img, core, table)
            rows.append({"design": d.name, "img": img, "core": core, "counted": counts[core][i], "predicted": pred,
                         "error": pred / counts[core][i] - 1.0})
    return rows + skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m search.table", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("build", "validate"))
    ap.add_argument("--img", default="64,224")
    ap.add_argument("--cores", default=",".join(DEFAULT_CORES))
    ap.add_argument("--work", default=".bench-work/latency-table")
    ap.add_argument("--designs", type=int, default=10)
    ap.add_argument("--json", default=None, help="validate: write the rows here")
    ap.add_argument("--force", action="store_true", help="let --json overwrite a file it did not write")
    args = ap.parse_args(argv)
    try:
        sizes = tuple(check_img_size(int(s)) for s in args.img.split(","))
    except ValueError as e:
        ap.error(f"--img {args.img}: {e}")
    from device_sim.arm.cores import get_core

    cores = tuple(get_core(c).name for c in args.cores.split(","))   # an unknown core fails before any work
    if args.action == "build":
        build(sizes, cores, Path(args.work))
        return 0
    json_out = check_output_file(args.json, kind="latency-table", force=args.force) if args.json else None
    rows = []
    for img in sizes:
        rows += validate(args.designs, img, cores, Path(args.work))
    for r in rows:
        if "skipped" in r:
            print(f"{r['design']:<44} {r['img']:>4} skipped: {r['skipped']}")
            continue
        print(f"{r['design']:<44} {r['img']:>4} {r['core']:<11} counted {r['counted'] / 1e6:8.3f} M  "
              f"predicted {r['predicted'] / 1e6:8.3f} M  {100 * r['error']:+6.2f}%")
    if json_out:
        publish_file(json_out, to_json(rows), kind="latency-table")
    return 0


if __name__ == "__main__":
    from contract.errors import run_command

    sys.exit(run_command(main, prog="python -m search.table", exiting=True))
