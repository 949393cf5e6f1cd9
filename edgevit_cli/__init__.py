"""edgevit_cli: the `edgevit` command. The layer above edgevit, export and device_sim: thin argparse
modules, one per subcommand, each with `add_arguments(parser)` and `run(args) -> exit code`. The
libraries raise; `main` turns their errors into one line on stderr and an exit code
(contract.errors). Nothing below imports this package.

Subcommand modules import their library inside `run`, so `edgevit simulate` never loads torch and
`edgevit train` never loads tensorflow.
"""
