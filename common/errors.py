"""The error every data and environment problem raises, defined where every module that raises it can reach it."""


class DatasetError(ValueError):
    """A dataset (or its evaluation env) that cannot be used; the message is one line that names the problem."""
