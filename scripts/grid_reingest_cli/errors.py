"""Exit codes and the one error type every command reports."""

from __future__ import annotations

# Exit codes, the same for every command.
OK = 0
FAILED = 1  # AWS or the table refused; nothing was changed that the message does not say
USAGE = 2  # bad arguments or bad input; nothing was changed
INCOMPLETE = 3  # `run` finished its pass, but not every image reached state 6
BROKEN_PIPE = 141  # the reader of our output went away (`| head`), as shells report SIGPIPE
INTERRUPTED = 130  # Ctrl-C, as shells report it


class CliError(Exception):
    """A failure to report to the operator as one clear line, with an exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code
