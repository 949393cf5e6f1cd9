"""Subcommands of the `edgevit` CLI that live in the PyTorch package (train, info)."""
