"""The one exception type the command line turns into a one-line message."""


class CoevoError(Exception):
    """A problem with the user's input, options or environment.

    The message is a single line that names the file, line, field or option at
    fault and says what to do. The CLI prints it and exits with status 2,
    without a traceback; library users can catch it like any exception.
    """
