"""Exit codes, the one error type every command reports, and which options a hint may name."""

from __future__ import annotations

import argparse

# Exit codes, the same for every command.
OK = 0
FAILED = 1  # AWS or the table refused; nothing was changed that the message does not say
USAGE = 2  # bad arguments or bad input; nothing was changed
INCOMPLETE = 3  # `run` finished its pass, but not every image reached state 6
# The reader of our output went away (`| head`): what a shell reports for a command
# killed by SIGPIPE, 128 + 13.
BROKEN_PIPE = 141
INTERRUPTED = 130  # Ctrl-C, as shells report it


class CliError(Exception):
    """A failure to report to the operator as one clear line, with an exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def offers(args: argparse.Namespace, option: str) -> bool:
    """Whether the command being run takes `option` (e.g. "--table"), so a hint may name it.

    main() records each command's options; a hint that names one the command lacks
    sends the operator to an error of argparse's instead of a way out.
    """
    return option in getattr(args, "offered_options", ())
