"""The one exception type users see: a problem with their input, told in one line."""


class PlayspeedError(Exception):
    """Bad input (a file, a config value, a checkpoint) that stops a command.

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback.
    Messages name the offending file (and line, where there is one) and the problem.
    """


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for
    one-line errors that wrap another."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
