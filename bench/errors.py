"""The root of vmbench's errors: every error it raises on purpose is a VmbenchError.

InputError is bad input (a scenario file, an option, a run id, a host id): the command says
it in one line naming the file and key, and exits 2 before anything starts.
"""


class VmbenchError(Exception):
    """An error vmbench raises on purpose, with a message meant for the user."""


class InputError(VmbenchError):
    """Bad input: one line, exit 2, nothing started."""
