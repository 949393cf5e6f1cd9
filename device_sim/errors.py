"""User-facing errors of device_sim: printed as one line by the CLIs, with an exit code."""

from __future__ import annotations

import os
import sys

__all__ = ["SimError", "run_cli", "module_main"]


class SimError(ValueError):
    """A problem the user can fix (bad model, profile, source or option); the message says how."""


def run_cli(fn, *, prog: str) -> int:
    """Runs fn() -> exit code; SimError/ValueError/OSError become one line on stderr and exit 2.
    DEVICE_SIM_DEBUG=1 shows the traceback instead."""
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        if os.environ.get("DEVICE_SIM_DEBUG") or os.environ.get("EDGEVIT_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def module_main(module, argv: list[str] | None, *, prog: str) -> int:
    """`python -m device_sim...` entry: the module's add_arguments/run behind run_cli."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=module.__doc__.splitlines()[0])
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return run_cli(lambda: module.run(args), prog=prog)
