"""Where commands write and ask: output files that are safe to replace, a closed pipe,
typed confirmations."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO, cast

from grid_reingest_cli.errors import BROKEN_PIPE, USAGE, CliError


@contextlib.contextmanager
def pipe_guard() -> Iterator[None]:
    """A reader that went away (`| head`) ends the command quietly with exit code 141, as a
    shell's command killed by SIGPIPE: the reader took what it wanted, nothing failed."""
    try:
        yield
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at nowhere so that fails quietly too.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise QuietExit(BROKEN_PIPE) from None


class QuietExit(Exception):
    """End the command with this exit code and nothing more said."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def check_output(path: str, force: bool) -> None:
    """Refuse, before any work, an OUTPUT that cannot or must not be written."""
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory", USAGE)
    if os.path.lexists(path) and not force:
        raise CliError(f"{path}: already exists; pass --force to replace it", USAGE)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{path}: folder {directory} does not exist", USAGE)
    if os.path.exists(path) and not _is_regular(path):
        if not os.access(path, os.W_OK):
            raise CliError(f"{path}: cannot write there (permission denied)", USAGE)
    elif not os.access(directory, os.W_OK):
        raise CliError(f"{path}: cannot write in {directory} (permission denied)", USAGE)


@contextlib.contextmanager
def open_output(path: str) -> Iterator[TextIO]:
    """A file to write OUTPUT through.

    A regular file (or a new one) is written beside it and renamed over it once
    complete, so it never holds half a result, with the mode `>` would give it;
    through a symlink, that is done at the file it points to, and the link stays.
    Anything else — a device, a FIFO — is written in place: renaming over it
    would replace it with a plain file.
    """
    target = os.path.realpath(path)
    handle: TextIO
    try:
        if os.path.exists(target) and not _is_regular(target):
            handle = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            tmp = None
        else:
            tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below
                "w",
                dir=os.path.dirname(target),
                prefix=".reingest-",
                suffix=".partial",
                delete=False,
                encoding="utf-8",
            )
            handle = cast(TextIO, tmp)
    except OSError as error:
        raise CliError(f"{path}: cannot write: {error.strerror}", USAGE) from None
    try:
        with handle:
            yield handle
        if tmp is not None:
            # The temporary file is made readable by its owner only; the result gets the
            # mode a file written with `>` would: the file's own if it is replaced, else
            # what the umask leaves of rw-rw-rw-.
            os.chmod(tmp.name, _mode_of(target))
            os.replace(tmp.name, target)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
            raise CliError(f"{path}: writing failed: {error.strerror or error}") from None
        raise


def confirm_typed(expected: str, question: str, assume_yes: bool) -> None:
    """Ask the operator to type `expected` (the stage or table) before an irreversible step."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} — refusing without a terminal to ask on; pass --yes", USAGE)
    answer = input(f"{question}\nType {expected} to go on: ").strip()
    if answer != expected:
        raise CliError("nothing changed", USAGE)


def _mode_of(target: str) -> int:
    """The permissions `target` should have once written."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
