"""Train the design variants of edgevit_xs on the make-train run's data and recipe, one after the other,
in a process of its own (`python -m benchmarks.train_designs WORK RUN_DIR DESIGNS_JSON`): the suite
runs it beside the exports, which leave one of the two cores idle, and waits for it before timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from edgevit.checkpoint import load_checkpoint
    from edgevit.data import load_dataset
    from edgevit.train import TrainConfig, train

    work, run, designs = Path(argv[0]), Path(argv[1]), json.loads(argv[2])
    ref = load_checkpoint(run / "best.pt")
    splits = load_dataset(ref.dataset.get("spec", "digits"), ref.img_size, seed=ref.dataset.get("split_seed", 0))
    recipe = {k: v for k, v in ref.train_config.items() if k not in ("out", "model", "model_kwargs", "baseline",
                                                                     "threads", "progress")}
    for name, options in designs.items():
        cfg = TrainConfig(**{**recipe, "out": str(work / name), "model": "edgevit_xs", "model_kwargs": options,
                             "threads": 1, "progress": False})
        train(cfg, splits)
        print(f"trained {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
