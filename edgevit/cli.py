"""The `edgevit` command: one entry point, subcommands imported only when used.

This dispatcher is the only place that names all three packages. It imports a subcommand's module
when that subcommand runs, so `edgevit simulate` and `edgevit bench` never import torch, and
`edgevit train` never imports tensorflow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "COMMANDS"]

# name -> (module with add_arguments(parser) and run(args) -> exit code, one-line help)
COMMANDS = {
    "info": ("edgevit.commands.info", "table of every registered model: params, MACs, attention blocks"),
    "train": ("edgevit.commands.train", "train a model (default: edgevit_xs on the embedded digits)"),
    "export": ("export.cli", "PyTorch checkpoint -> ONNX -> TFLite fp32/fp16/int8, with a fidelity report"),
    "simulate": ("device_sim.cli", "run an exported model in a simulated camera loop against device budgets"),
    "bench": ("device_sim.bench", "on-device style benchmark of a .tflite (latency, memory)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="edgevit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version="edgevit 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help / "invalid choice" and exits
        parser.print_help()
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"edgevit {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    return run_user_command(lambda: module.run(args), prog=f"edgevit {name}")


def run_user_command(fn, *, prog: str) -> int:
    """Runs fn(); a user mistake (ValueError, missing or unwritable file) becomes one line on stderr
    and exit code 2. Set EDGEVIT_DEBUG=1 to see the traceback instead. The handler is device_sim's
    (the lightest package, importable everywhere), so every command reports errors the same way."""
    from device_sim.errors import run_cli

    return run_cli(fn, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
