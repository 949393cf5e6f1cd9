"""The `edgevit` dispatcher: one entry point, each subcommand's module imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import sys

from contract import __version__
from contract.errors import EXIT_USAGE, UserError, run_command

__all__ = ["main", "COMMANDS", "EXTRAS", "OneLineParser", "seed"]

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
# name -> the optional-dependency groups (pyproject.toml) the command needs beyond `device`
EXTRAS = {"info": ("train",), "train": ("train",), "export": ("train", "export"), "quant-report": ("export",),
          "search": ("train", "export", "search")}
OURS = frozenset({"contract", "edgevit", "edgevit_cli", "export", "device_sim", "search"})
SEED_MAX = 2**32 - 1   # numpy's legacy generator (and so Optuna's samplers) take no larger seed; torch none above 2**64


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the problem and where the help is, not the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}; see `{self.prog} --help`\n")


def seed(text: str) -> int:
    """The argparse type of every seed option: a whole number 0..SEED_MAX, refused in one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {SEED_MAX}, got {text!r}")
    return value


def _missing_extra(name: str, e: ModuleNotFoundError) -> BaseException:
    """A third-party package the command needs is not installed: which group to install, in one line. A
    module of ours that is missing is a bug (a broken install or a wrong import), not the user's to fix."""
    package = (e.name or "").split(".")[0]
    if not package or package in OURS:
        return e
    groups = ",".join(EXTRAS.get(name, ("device",)))
    return UserError(f"`edgevit {name}` needs the Python package {package}, which is not installed here; install "
                     f"edgevit's {groups} extra: pip install 'edgevit[{groups}]' (from a clone: "
                     f"pip install '.[{groups}]')")


def _command(name: str, argv: list[str]):
    """Imports the subcommand, parses its options (a usage error exits 2 in one line) and runs it."""
    try:
        module = importlib.import_module(f"edgevit_cli.{name.replace('-', '_')}")
        cmd_parser = OneLineParser(prog=f"edgevit {name}", description=COMMANDS[name])
        module.add_arguments(cmd_parser)
        args = cmd_parser.parse_args(argv)
        _recover_inputs(name, module, args)
        return module.run(args)
    except ModuleNotFoundError as e:
        raise _missing_extra(name, e) from None


def _recover_inputs(name: str, module, args) -> None:
    """The paths the command reads (its module's INPUTS: option names) are recovered first: an output folder a
    killed command left half replaced is put back before its files are read (contract.outputs.recover_input)."""
    from contract.outputs import recover_input

    for option in getattr(module, "INPUTS", ()):
        value = getattr(args, option, None)
        if value:
            recover_input(value, what=name)


def main(argv: list[str] | None = None, *, exiting: bool | None = None) -> int:
    """The CLI. exiting (default: argv is None, i.e. the process's own command line): the process ends with
    the returned code (see contract.errors.run_command)."""
    exiting = argv is None if exiting is None else exiting
    argv = sys.argv[1:] if argv is None else argv
    parser = OneLineParser(prog="edgevit", description="edgevit: vision transformers for wearables: "
                           "train, export to int8 TFLite, simulate a device.")
    parser.add_argument("--version", action="version", version=f"edgevit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help / "invalid choice" and exits
        parser.print_help()
        return EXIT_USAGE
    name = argv[0]
    return run_command(lambda: _command(name, argv[1:]), prog=f"edgevit {name}", exiting=exiting)


if __name__ == "__main__":
    sys.exit(main())
