"""Errors of the local pipeline that its user can act on (the CLI prints them without a traceback)."""


class PipelineError(RuntimeError):
    """The local pipeline could not do what it was asked; the message names no record content (PHI)."""
