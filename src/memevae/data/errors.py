"""The one exception type of the data layer."""


class DataError(Exception):
    """Bad or missing input data. The message is one line: the file or problem, then the fix."""
