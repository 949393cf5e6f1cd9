"""The `edgevit` dispatcher: one entry point, each subcommand's module imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import sys

from contract import __version__
from contract.errors import run_command

__all__ = ["main", "COMMANDS"]

# name -> one-line help; the module is edgevit_cli.<name, - as _> with add_arguments(parser) and run(args)
COMMANDS = {
    "info": "table of every registered model: params, MACs, attention blocks",
    "train": "train a model (default: edgevit_xs on the embedded digits)",
    "export": "PyTorch checkpoint -> ONNX -> TFLite fp32/fp16/int8, with a fidelity report",
    "simulate": "run a model or a pipeline of models in a simulated camera loop against device budgets",
    "bench": "on-device style benchmark of a .tflite (latency, memory)",
    "target": "run an exported model on an emulated ARM core: instructions per inference, agreement with host",
    "quant-report": "int8 debugger: every int8 layer against its float counterpart, ranked, with PyTorch module names",
    "search": "search the family's design under a device budget on the target's latency table (Optuna)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="edgevit", description="edgevit: vision transformers for wearables: "
                                     "train, export to int8 TFLite, simulate a device.")
    parser.add_argument("--version", action="version", version=f"edgevit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help / "invalid choice" and exits
        parser.print_help()
        return 2
    name = argv[0]
    module = importlib.import_module(f"edgevit_cli.{name.replace('-', '_')}")
    cmd_parser = argparse.ArgumentParser(prog=f"edgevit {name}", description=COMMANDS[name])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    return run_command(lambda: module.run(args), prog=f"edgevit {name}")


if __name__ == "__main__":
    sys.exit(main())
