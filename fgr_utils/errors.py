"""The one exception type the kit raises for problems a user can fix.

Every ``FgrError`` message is a single line that says what is wrong and what to do about it;
the ``fgr`` command prints it without a traceback.
"""


class FgrError(Exception):
    """A user-fixable problem: bad parameter, missing data, corrupt file, failed download."""


class DatasetMissing(FgrError):
    """A dataset a notebook needs is not on disk (the message names the command that fixes it)."""
