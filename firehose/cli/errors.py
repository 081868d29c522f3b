"""Errors the CLI reports to the user without a traceback."""


class CommandError(Exception):
    """A user-facing failure: printed as ``ctr-billing: <message>`` with exit status 2."""
