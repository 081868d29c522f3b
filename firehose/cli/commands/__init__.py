"""Subcommands of the ``ctr-billing`` CLI, one module each."""
