"""`reingest`: the operators' entry point, one sub-command per job."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata

import botocore
from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest.adapters.dynamodb.schema import StateTableError
from grid_reingest_cli import (
    clients,
    control,
    failures,
    ids,
    pass_records,
    plan,
    reset,
    run,
    scan_statuses,
    schedules,
    stack,
    stats,
    upload_ids,
    watch,
)
from grid_reingest_cli.common import (
    BROKEN_PIPE,
    FAILED,
    INTERRUPTED,
    USAGE,
    CliError,
    explain_aws_error,
)
from grid_reingest_cli.output import QuietExit

COMMANDS = (
    upload_ids,
    scan_statuses,
    stats,
    reset,
    failures,
    watch,
    run,
    plan,
    pass_records,
)

EPILOG = """\
Run a command with no arguments, or with --help, to see its usage.

exit codes (every command): 0 done; 1 AWS or the table failed (the message says
what was changed); 2 bad arguments or input (nothing changed); 3 `run` finished
but not every image reached state 6; 130 interrupted (Ctrl-C).
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="reingest",
        description="Run a Grid's images through its ingestion pipeline again: "
        "operator commands over the state table.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an unexpected error (anywhere on the line, or "
        "REINGEST_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    schedules.add_parsers(subparsers)
    control.add_parsers(subparsers)
    ids.add_parsers(subparsers)
    for sub in _subparsers(parser).values():
        _add_output_alias(sub)
    return parser


def version() -> str:
    """e.g. 'reingest 0.1.0 Python/3.13.0 Linux/6.1 botocore/1.35.0', as aws-cli prints it."""
    try:
        ours = metadata.version("grid-reingest")
    except metadata.PackageNotFoundError:
        ours = "(not installed)"
    return (
        f"reingest {ours} Python/{platform.python_version()} "
        f"{platform.system()}/{platform.release()} botocore/{botocore.__version__}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see EPILOG)."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # the reader went away while usage or help was printed
        return _reader_gone()


def _main(argv: list[str]) -> int:
    # --debug is the program's, wherever it is written: before the command or after it.
    debug = "--debug" in _options(argv)
    if debug:
        argv = [a for n, a in enumerate(argv) if a != "--debug" or n >= _options_end(argv)]
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return USAGE
    # A command run bare prints its whole usage, as the Grid's scripts did; so does a
    # group of commands (`reingest ids`) and each of its commands (`reingest ids diff`).
    sub = _command_named(parser, argv)
    if sub is not None:
        sub.print_help(sys.stderr)
        return USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse's usage errors (2), --help and --version (0)
        return stop.code if isinstance(stop.code, int) else USAGE
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return USAGE
    args.debug = args.debug or debug
    words = _command_words(parser, argv)
    command = " ".join(words)
    sub = _command_named(parser, words) if words else None
    args.offered_options = frozenset(
        option for action in (sub._actions if sub else ()) for option in action.option_strings
    )
    stack.clear_cache()
    clients.clear_cache()
    if getattr(args, "file", None) == "-" and sys.stdin.isatty():
        print("reading ids from standard input… (end with Ctrl-D)", file=sys.stderr)
    return _dispatch(args, command)


def _dispatch(args: argparse.Namespace, command: str) -> int:
    """Run the command: every failure becomes one line and an exit code, never a traceback."""
    try:
        code = args.run(args)
        sys.stdout.flush()
        return code
    except QuietExit as stop:
        return stop.code
    except (CliError, StateTableError, ClientError, BotoCoreError, OSError) as error:
        if isinstance(error, BrokenPipeError):
            return _reader_gone()
        _report(command, explain_aws_error(error))
        return error.code if isinstance(error, CliError) else FAILED
    except KeyboardInterrupt:
        _report(command, "interrupted")
        return INTERRUPTED
    except Exception as error:
        if args.debug or os.environ.get("REINGEST_DEBUG"):
            traceback.print_exc()
        _report(
            command,
            f"unexpected {type(error).__name__}: {error} "
            f"(nothing more was changed; `reingest --debug {command} ...` shows where)",
        )
        return FAILED


def _options_end(argv: list[str]) -> int:
    """Where options end: at `--`, after which every word is an argument."""
    return argv.index("--") if "--" in argv else len(argv)


def _options(argv: list[str]) -> list[str]:
    return argv[: _options_end(argv)]


def _report(command: str, message: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(f"reingest {command}: error: {message}", file=sys.stderr)


def _reader_gone() -> int:
    # The reader of our output closed it (`| head`): stop quietly; point stdout at
    # nothing so that the interpreter's final flush cannot fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE


def _command_words(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The command's words in `argv`: `ids from-bucket` of `ids from-bucket images ...`."""
    words = []
    for word in (a for a in argv if not a.startswith("-")):
        found = _subparsers(parser).get(word)
        if found is None:
            break
        parser = found
        words.append(word)
    return words


def _command_named(
    parser: argparse.ArgumentParser, words: list[str]
) -> argparse.ArgumentParser | None:
    """The (sub-)command that `words` name, when they name one and nothing else."""
    named: argparse.ArgumentParser | None = parser
    for word in words:
        named = _subparsers(named).get(word) if named else None
    return named


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    if parser._subparsers is None:
        return found
    for action in parser._subparsers._group_actions:  # argparse offers no public lookup
        found.update(getattr(action, "choices", {}) or {})
    return found


def _add_output_alias(sub: argparse.ArgumentParser) -> None:
    # aws-cli's --output json wherever a command prints a table: commands that
    # already have --json accept it too (the runner maps it onto --json).
    options = {o for a in sub._actions for o in a.option_strings}
    if "--json" in options and "--output" not in options:
        sub.add_argument(
            "--output", choices=("text", "json"), default="text", help="json: as --json"
        )
        sub.set_defaults(run=_with_json(sub.get_default("run")))


def _with_json(command_run):
    def run_command(args: argparse.Namespace) -> int:
        if args.output == "json":
            args.json = True
        return command_run(args)

    return run_command
