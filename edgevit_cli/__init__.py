"""edgevit_cli: the `edgevit` command. The layer above edgevit, export and device_sim: thin argparse
modules, one per subcommand, each with `add_arguments(parser)` and `run(args) -> exit code`. The
libraries raise; `main` turns a user's mistake into one line on stderr and exit 2, and anything else
into its traceback and exit 1, a bug (contract.errors.run_command). Nothing below imports this package.

Subcommand modules import their library inside `run`, so `edgevit simulate` never loads torch and
`edgevit train` never loads tensorflow.
"""
