"""The operator commands, run as an operator would, against moto's server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def grid_id(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
def ids_file(tmp_path):
    def write(content: bytes | str, name: str = "ids.txt") -> str:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    return write


def run(*argv: str) -> int:
    return main(list(argv))


# -- upload-ids ----------------------------------------------------------------


def test_upload_ids_strips_bom_crlf_blanks_and_duplicates(table, ids_file, capsys):
    # Given a file as a spreadsheet saves it
    content = (
        b"\xef\xbb\xbf"
        + b"\r\n".join(
            [
                grid_id(1).encode(),
                b"  " + grid_id(2).encode() + b"  ",
                b"",
                b"   ",
                grid_id(1).encode(),
                grid_id(3).encode(),
            ]
        )
        + b"\r\n"
    )
    # When
    code = run("upload-ids", "--table", table.name, ids_file(content))
    # Then
    out = capsys.readouterr().out
    assert code == 0
    assert table.count(S.NOT_STARTED) == 3
    assert table.get(grid_id(1)) is not None
    assert "duplicate              1" in out
    assert "blank                  2" in out
    assert "written                3" in out


def test_upload_ids_reports_every_invalid_line_and_writes_nothing(table, ids_file, capsys):
    # Given a table that already holds finished work, and a file with junk in it
    table.put_new([grid_id(9)])
    table.apply([Transition(grid_id(9), S.NOT_STARTED, S.VERIFIED)])
    path = ids_file(f"{grid_id(1)}\nnot an id\n{grid_id(2)}\nbad\x07id\n")
    # When
    code = run("upload-ids", "--table", table.name, path)
    # Then
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:2: contains whitespace" in err
    assert f"{path}:4: contains control characters" in err
    assert "nothing written" in err
    assert table.get(grid_id(1)) is None
    assert table.get(grid_id(9))["progress_state"] == 6


def test_upload_ids_skip_invalid_writes_the_rest(table, ids_file, capsys):
    path = ids_file(f"{grid_id(1)}\nnot an id\n{grid_id(2)}\n")
    assert run("upload-ids", "--table", table.name, "--skip-invalid", path) == 0
    assert table.count(S.NOT_STARTED) == 2
    assert "invalid                1 (skipped)" in capsys.readouterr().out


def test_upload_ids_warns_on_ids_that_do_not_look_like_the_grids(table, ids_file, capsys):
    path = ids_file(f"{grid_id(0xABCDEF).upper()}\nabc123\n")
    assert run("upload-ids", "--table", table.name, path) == 0
    err = capsys.readouterr().err
    assert f"{path}:1: does not look like a Grid id" in err
    assert f"{path}:2: does not look like a Grid id" in err
    assert table.count(S.NOT_STARTED) == 2


@pytest.mark.parametrize("content", ["", "\n\n   \n\r\n", "\ufeff"])
def test_upload_ids_refuses_a_file_without_ids(table, ids_file, content, capsys):
    assert run("upload-ids", "--table", table.name, ids_file(content)) == 2
    assert "no ids found" in capsys.readouterr().err
    assert table.count(S.NOT_STARTED) == 0


def test_upload_ids_refuses_text_that_is_not_utf8(table, ids_file, capsys):
    path = ids_file(grid_id(1).encode() + b"\n\xff\xfe\n")
    assert run("upload-ids", "--table", table.name, path) == 2
    assert f"{path}:2: not UTF-8 text" in capsys.readouterr().err


def test_upload_ids_names_a_missing_file(table, capsys):
    assert run("upload-ids", "--table", table.name, "/nowhere/ids.txt") == 2
    assert "/nowhere/ids.txt: no such file" in capsys.readouterr().err


def test_upload_ids_names_a_missing_table(aws, ids_file, capsys):
    assert run("upload-ids", "--table", "no-such-table", ids_file(grid_id(1))) == 1
    assert "'no-such-table' does not exist in region eu-west-1" in capsys.readouterr().err


def test_upload_ids_in_the_wrong_region_says_so(table, ids_file, capsys):
    code = run("upload-ids", "--table", table.name, "--region", "us-east-2", ids_file(grid_id(1)))
    assert code == 1
    assert "does not exist in region us-east-2" in capsys.readouterr().err
    assert table.count(S.NOT_STARTED) == 0


def test_upload_ids_only_new_keeps_existing_states(table, ids_file, capsys):
    table.put_new([grid_id(1)])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.VERIFIED)])
    path = ids_file(f"{grid_id(1)}\n{grid_id(2)}\n")

    assert run("upload-ids", "--table", table.name, "--only-new", path) == 0
    assert "kept                   1" in capsys.readouterr().out
    assert table.get(grid_id(1))["progress_state"] == 6

    assert run("upload-ids", "--table", table.name, path) == 0  # the default resets
    assert table.get(grid_id(1))["progress_state"] == 0


def test_upload_ids_dry_run_writes_nothing(table, ids_file, capsys):
    assert run("upload-ids", "--table", table.name, "--dry-run", ids_file(grid_id(1))) == 0
    assert "would write            1" in capsys.readouterr().out
    assert table.get(grid_id(1)) is None


def test_upload_ids_reads_stdin(table, aws):
    result = subprocess.run(
        [sys.executable, "-m", "grid_reingest_cli", "upload-ids", "--table", table.name, "-"],
        input=f"{grid_id(5)}\r\n{grid_id(6)}\r\n".encode(),
        capture_output=True,
        env={**os.environ},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert table.count(S.NOT_STARTED) == 2


# -- scan-statuses ----------------------------------------------------------------


def test_scan_statuses_writes_id_state_lines_and_counts(table, tmp_path, capsys):
    table.put_new([grid_id(i) for i in range(30)])
    table.apply([Transition(grid_id(i), S.NOT_STARTED, S.KNOWN_ERROR) for i in range(4)])
    output = tmp_path / "statuses.txt"

    assert run("scan-statuses", "--table", table.name, "--segments", "3", str(output)) == 0

    lines = output.read_text().splitlines()
    assert sorted(lines) == sorted(
        [f"{grid_id(i)} 4" for i in range(4)] + [f"{grid_id(i)} 0" for i in range(4, 30)]
    )
    out = capsys.readouterr().out
    assert "30 item(s)" in out
    assert "blacklisted because of known failure" in out
    assert not list(tmp_path.glob(".scan-*"))


def test_scan_statuses_will_not_replace_a_file_without_force(table, tmp_path, capsys):
    output = tmp_path / "statuses.txt"
    output.write_text("an earlier scan\n")
    assert run("scan-statuses", "--table", table.name, str(output)) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert output.read_text() == "an earlier scan\n"
    assert run("scan-statuses", "--table", table.name, "--force", str(output)) == 0


def test_scan_statuses_to_stdout_keeps_the_counts_apart(table, capsys):
    table.put_new([grid_id(1)])
    assert run("scan-statuses", "--table", table.name, "-") == 0
    captured = capsys.readouterr()
    assert captured.out == f"{grid_id(1)} 0\n"
    assert "1 item(s)" in captured.err


def test_scan_statuses_on_a_missing_table_leaves_no_file(aws, tmp_path, capsys):
    output = tmp_path / "statuses.txt"
    assert run("scan-statuses", "--table", "missing", str(output)) == 1
    assert not output.exists()
    assert not list(tmp_path.iterdir())


# -- stats ----------------------------------------------------------------


def test_stats_prints_counts_names_and_percentages(table, capsys):
    table.put_new([grid_id(i) for i in range(8)])
    table.apply([Transition(grid_id(i), S.NOT_STARTED, S.VERIFIED) for i in range(2)])

    assert run("stats", "--table", table.name) == 0

    out = capsys.readouterr().out
    assert "8 item(s)" in out
    assert "at rest" in out and "75.0%" in out
    assert "image verified in media-api" in out and "25.0%" in out


def test_stats_json(table, capsys):
    import json

    table.put_new([grid_id(1)])
    assert run("stats", "--table", table.name, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 1
    assert data["states"]["0"]["count"] == 1


# -- reset ----------------------------------------------------------------


def test_reset_moves_known_errors_back_to_zero(table, capsys):
    table.put_new([grid_id(i) for i in range(6)])
    table.apply(
        [Transition(grid_id(i), S.NOT_STARTED, S.KNOWN_ERROR, attempts=1) for i in range(3)]
    )
    table.apply([Transition(grid_id(5), S.NOT_STARTED, S.UNKNOWN_ERROR)])

    assert run("reset", "--table", table.name, "--from", "4") == 0

    assert "moved 3 item(s)" in capsys.readouterr().out
    assert table.counts([S.NOT_STARTED, S.KNOWN_ERROR, S.UNKNOWN_ERROR]) == {
        S.NOT_STARTED: 5,
        S.KNOWN_ERROR: 0,
        S.UNKNOWN_ERROR: 1,
    }


def test_reset_dry_run_only_counts(table, capsys):
    table.put_new([grid_id(1)])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.UNKNOWN_ERROR)])
    assert run("reset", "--table", table.name, "--from", "UNKNOWN_ERROR,4", "--dry-run") == 0
    assert "would move 1 item(s)" in capsys.readouterr().out
    assert table.get(grid_id(1))["progress_state"] == 8


def test_reset_asks_before_moving_more_than_a_thousand(table, monkeypatch, capsys):
    table.put_new([grid_id(i) for i in range(1001)])
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run("reset", "--table", table.name, "--from", "0", "--to", "2") == 2
    assert "pass --yes" in capsys.readouterr().err
    assert table.count(S.NOT_STARTED) == 1001
    assert run("reset", "--table", table.name, "--from", "0", "--to", "2", "--yes") == 0
    assert table.count(S.NOT_FOUND) == 1001


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "42"], "unknown progress state '42'"),
        (["--from", "4", "--to", "1"], "only a worker may put an item in a claim state"),
        (["--from", "0"], "nothing to do"),
    ],
)
def test_reset_refuses_bad_states(table, capsys, args, message):
    assert run("reset", "--table", table.name, *args) == 2
    assert message in capsys.readouterr().err


# -- usage ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["upload-ids", "scan-statuses", "stats", "reset", "start", "stop", "watch"]
)
def test_each_command_run_bare_prints_its_usage(command, capsys):
    assert run(command) == 2
    assert f"usage: reingest {command}" in capsys.readouterr().err


def test_scripts_run_the_same_commands():
    for script in ("upload-ids", "scan-statuses", "stats", "reset", "start", "stop", "watch"):
        result = subprocess.run(
            [str(ROOT / "scripts" / script)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert f"usage: reingest {script}" in result.stderr


# -- start / stop / watch ------------------------------------------------------


@pytest.fixture
def rule(aws):
    import boto3

    events = boto3.client("events", endpoint_url=aws)
    events.put_rule(Name="index-rule", ScheduleExpression="rate(5 minutes)", State="DISABLED")
    return events


def test_start_and_stop_switch_a_named_rule(rule, capsys):
    assert run("start", "--rule", "index-rule") == 0
    assert rule.describe_rule(Name="index-rule")["State"] == "ENABLED"
    assert "index-rule: ENABLED (rate(5 minutes))" in capsys.readouterr().out
    assert run("stop", "--rule", "index-rule", "--worker", "index") == 0
    assert rule.describe_rule(Name="index-rule")["State"] == "DISABLED"


def test_start_names_a_missing_rule(rule, capsys):
    assert run("start", "--rule", "no-such-rule") == 1
    assert "rule no-such-rule: ResourceNotFoundException" in capsys.readouterr().err


def test_start_needs_a_stage_or_a_rule(aws, capsys):
    assert run("start", "--worker", "index") == 2
    assert "name the stage (--stage TEST) or the rule (--rule NAME)" in capsys.readouterr().err


def test_a_stage_without_a_stack_is_explained(aws, capsys):
    assert run("stats", "--stage", "NOPE") == 1
    assert "stack grid-reingest-NOPE not found in region eu-west-1" in capsys.readouterr().err
    assert run("start", "--stage", "NOPE") == 1


def test_watch_once_prints_the_states(table, capsys):
    table.put_new([grid_id(1), grid_id(2)])
    assert run("watch", "--table", table.name, "--once") == 0
    out = capsys.readouterr().out
    assert "2 item(s) in" in out
    assert "at rest" in out and "100.0%" in out
