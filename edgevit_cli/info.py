"""`edgevit info`: params, MACs and attention blocks of every registered model."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--img-size", type=int, default=224, help="input size for the MAC count (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier width (default 1000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from edgevit.info import info_table, model_info
    from edgevit.registry import list_models

    infos = [model_info(n, img_size=args.img_size, num_classes=args.num_classes) for n in list_models()]
    print(json.dumps([i.as_dict() for i in infos], indent=2) if args.json else info_table(infos))
    return 0
