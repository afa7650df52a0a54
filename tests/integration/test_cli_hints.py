"""What the commands tell an operator to type names only options that command takes."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from grid_reingest_cli.main import _subparsers, build_parser, main
from tests.integration.console_harness import deploy_stage, grid_id

ROOT = Path(__file__).resolve().parents[2]
# `reingest COMMAND ...` as the commands' messages, help and the operators' docs write it
SUGGESTED = re.compile(r"reingest ((?:--[a-z-]+ )*[a-z][a-z-]*)((?: +[^\s`'\"(){}|]+)*)")
TOP_LEVEL = {"--debug", "--version", "--help"}
SOURCES = [
    *sorted((ROOT / "scripts" / "grid_reingest_cli").glob("*.py")),
    ROOT / "README.md",
    ROOT / "docs" / "operations.md",
    ROOT / "docs" / "state-table.md",
]


def reingest(*argv: str) -> int:
    return main(list(argv))


def options_of() -> dict[str, set[str]]:
    """Each command's options; a command with commands of its own (`ids`) by its full name,
    `ids from-bucket`."""
    found = {}
    for name, sub in _subparsers(build_parser()).items():
        found[name] = {o for a in sub._actions for o in a.option_strings}
        for inner, parser in _subparsers(sub).items():
            found[f"{name} {inner}"] = {o for a in parser._actions for o in a.option_strings}
    return found


def suggestions() -> list[tuple[str, str, str]]:
    found = []
    for path in SOURCES:
        for match in SUGGESTED.finditer(path.read_text()):
            *before, command = match.group(1).split()
            found.append((path.name, command, " ".join(before) + match.group(2)))
    return found


def test_hints_every_suggested_command_line_names_options_it_takes():
    # Given every `reingest COMMAND --option ...` the commands and the docs suggest
    options = options_of()
    wrong = []
    for where, named, rest in suggestions():
        inner = f"{named} {rest.split()[0]}" if rest.split() else ""
        command = inner if inner in options else named
        if command not in options:
            continue  # prose: "reingest is", "reingest run's report"
        for word in rest.replace("[", " ").replace("]", " ").split():
            option = word.split("=")[0]
            if option.startswith("--") and option not in options[command] | TOP_LEVEL:
                wrong.append(f"{where}: reingest {command} ... {option}")
    # Then each option named is one that command has
    assert wrong == []
    assert len(suggestions()) > 40  # the pattern still finds them


def test_hints_a_missing_stack_names_the_way_round_each_command_has(aws, capsys):
    # When commands are pointed at a stage that was never deployed
    assert reingest("stats", "--stage", "NOPE") == 1
    stats = capsys.readouterr().err
    assert reingest("stop", "--stage", "NOPE") == 1
    stop = capsys.readouterr().err
    assert reingest("run", "ids.txt", "--stage", "NOPE") != 0
    ran = capsys.readouterr().err
    # Then each says what it can take instead, and none names an option it lacks
    assert "stack grid-reingest-NOPE not found" in stats + stop + ran
    assert "or name the table with --table" in stats
    assert "or name the rule with --rule" in stop and "--table" not in stop
    assert "--table" not in ran and "--rule" not in ran


def test_hints_a_stage_whose_table_is_gone_names_stage_not_table(aws, tmp_path, capsys):
    # Given a stage whose stack names a table that does not exist
    deploy_stage(aws, SimpleNamespace(name="gone"))
    path = tmp_path / "ids.txt"
    path.write_text(f"{grid_id(1)}\n")
    # When run is asked to work on it
    assert reingest("run", str(path), "--stage", "TEST") == 1
    # Then the message points at --stage (run takes no --table)
    err = capsys.readouterr().err
    assert "'gone' does not exist" in err
    assert "check --stage and --region" in err
    assert "--table" not in err


@pytest.mark.parametrize("extra", [[], ["--allow-any-id"]])
def test_hints_run_refuses_the_control_items_key_naming_file_and_line(
    aws, table, tmp_path, capsys, extra
):
    # Given a stage, and a file whose second line is the control item's key
    stage = deploy_stage(aws, table)
    path = tmp_path / "ids.txt"
    path.write_text(f"{grid_id(1)}\n~control\n")
    # When it is run (the option upload-ids' hint names is one run takes too)
    code = reingest("run", str(path), "--stage", "TEST", *extra)
    # Then nothing is uploaded or started, and the line is named with why
    assert code == 2
    assert f"{path}:2: starts with '~'" in capsys.readouterr().err
    assert sum(table.counts().values()) == 0
    assert stage.rule("index") == "DISABLED"


def test_hints_run_takes_other_ids_with_allow_any_id(aws, table, tmp_path, capsys):
    # Given a file of ids that are not the Grid's
    deploy_stage(aws, table)
    path = tmp_path / "ids.txt"
    path.write_text("my-image\n")
    # When run without, then with --allow-any-id (its own hint)
    assert reingest("run", str(path), "--stage", "TEST") == 2
    assert "--allow-any-id to allow others" in capsys.readouterr().err
    assert reingest("run", str(path), "--stage", "TEST", "--allow-any-id", "--dry-run") == 0
