"""Errors the command line reports as one line, without a traceback."""


class UserError(RuntimeError):
    """Bad input or a missing prerequisite: the message names the thing and what to do."""
