"""The one exception type for problems a user can cause (bad files, bad configs, bad sizes).

CLIs catch it and print its message as a single line; anything else is a bug and keeps its traceback.
"""


class StmError(Exception):
    """A user-facing error: its message names the file or setting and the problem."""
