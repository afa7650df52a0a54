"""The operator commands, run as an operator would, against moto's server."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from devtools.testing import grid_id
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.reasons import group_id
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli.main import _subparsers, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


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


def test_upload_ids_keeps_existing_items_and_says_in_which_states(table, ids_file, capsys):
    # Given ids already in the table: one verified, one held by a worker
    table.put_new([grid_id(1), grid_id(2), grid_id(3)])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.VERIFIED, attempts=1, error="e")])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "worker")
    path = ids_file("".join(f"{grid_id(i)}\n" for i in range(1, 6)))
    # When the file is uploaded, and then again
    assert run("upload-ids", "--table", table.name, path) == 0
    first = capsys.readouterr().out
    assert run("upload-ids", "--table", table.name, path) == 0
    second = capsys.readouterr().out
    # Then the existing items are untouched and counted by state; the second run writes nothing
    assert "written                2" in first
    assert "already in             3" in first
    assert re.search(r"kept +1 in 6 \(image verified", first)
    assert re.search(r"kept +1 in 1 \(in progress\)", first)
    assert "written                0" in second
    assert "already in             5" in second
    assert table.get(grid_id(1))["progress_state"] == 6
    assert table.get(grid_id(1))["attempts"] == 1
    assert table.count(S.IN_PROGRESS) == 1


def test_upload_ids_only_new_is_accepted_with_a_note(table, ids_file, capsys):
    assert run("upload-ids", "--table", table.name, "--only-new", ids_file(grid_id(1))) == 0
    assert "--only-new is the default now" in capsys.readouterr().err
    assert table.count(S.NOT_STARTED) == 1


def test_upload_ids_reset_existing_spares_what_a_worker_holds(table, ids_file, capsys):
    # Given a verified item, an item held by a worker, and a new id
    table.put_new([grid_id(1), grid_id(2)])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.VERIFIED)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "worker")
    path = ids_file(f"{grid_id(1)}\n{grid_id(2)}\n{grid_id(3)}\n")
    # When
    assert run("upload-ids", "--table", table.name, "--reset-existing", path) == 0
    # Then
    out = capsys.readouterr().out
    assert re.search(r"reset +1 to 0 from 6", out)
    assert re.search(r"held +1 kept: a worker holds them", out)
    assert "written                1" in out
    assert table.counts([S.NOT_STARTED, S.IN_PROGRESS]) == {S.NOT_STARTED: 2, S.IN_PROGRESS: 1}


def test_upload_ids_reset_existing_asks_for_the_table_name_above_the_threshold(
    table, ids_file, monkeypatch, capsys
):
    # Given a file above the (lowered) threshold
    monkeypatch.setattr("grid_reingest_cli.upload_ids.CONFIRM_ABOVE", 2)
    table.put_new([grid_id(1)])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.VERIFIED)])
    path = ids_file("".join(f"{grid_id(i)}\n" for i in range(1, 4)))
    # When there is no terminal, or the answer is wrong, nothing is written
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run("upload-ids", "--table", table.name, "--reset-existing", path) == 2
    assert "pass --yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert run("upload-ids", "--table", table.name, "--reset-existing", path) == 2
    assert table.get(grid_id(2)) is None
    # Then --yes goes on
    assert run("upload-ids", "--table", table.name, "--reset-existing", "--yes", path) == 0
    assert table.count(S.NOT_STARTED) == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("id", "a header line"),
        (f'"{grid_id(1)}"', "quoted"),
        (grid_id(0xABCDEF).upper(), "upper-case hex"),
        (".", "path segment"),
        ("..", "path segment"),
        ("x" * 257, "longer than 256 characters"),
    ],
)
def test_upload_ids_refuses_what_is_not_a_grid_id(table, ids_file, capsys, line, reason):
    path = ids_file(f"{grid_id(1)}\n{line}\n")
    assert run("upload-ids", "--table", table.name, path) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: " in err and reason in err
    assert table.get(grid_id(1)) is None


def test_upload_ids_allow_any_id_takes_other_keys_but_not_dots(table, ids_file, capsys):
    path = ids_file("my-image-1\nABC\n..\n")
    assert run("upload-ids", "--table", table.name, "--allow-any-id", path) == 2
    assert ":3: a path segment" in capsys.readouterr().err
    path = ids_file("my-image-1\nABC\n", "other.txt")
    assert run("upload-ids", "--table", table.name, "--allow-any-id", path) == 0
    assert table.get("ABC")["progress_state"] == 0


def test_upload_ids_refuses_the_control_items_key_even_with_allow_any_id(table, ids_file, capsys):
    # Given a file holding the control item's key among other ids
    path = ids_file(f"my-image-1\n~control\n{grid_id(1)}\n~other\n")
    # When it is uploaded with every id allowed
    code = run("upload-ids", "--table", table.name, "--allow-any-id", path)
    # Then nothing is written, and the lines are named with why
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:2: starts with '~'" in err
    assert f"{path}:4: starts with '~'" in err
    assert table.get("~control") is None
    assert table.get("my-image-1") is None
    # And with --skip-invalid, the others are written, never those
    assert run("upload-ids", "--table", table.name, "--allow-any-id", "--skip-invalid", path) == 0
    assert table.get("~control") is None
    assert table.get(grid_id(1))["progress_state"] == 0


def test_upload_ids_lists_twenty_bad_lines_then_a_count_and_a_hint(table, ids_file, capsys):
    # Given scan-statuses output passed as a file of ids
    path = ids_file("".join(f"{grid_id(i)} 4\n" for i in range(50)))
    # When
    assert run("upload-ids", "--table", table.name, path) == 2
    # Then
    err = capsys.readouterr().err
    assert len(re.findall(rf"error: {re.escape(path)}:\d+: ", err)) == 20
    assert "... and 30 more invalid line(s)" in err
    assert "looks like scan-statuses output (`id state`): take the first column" in err


def test_upload_ids_says_what_it_wrote_when_interrupted(table, ids_file, monkeypatch, capsys):
    # Given an operator who presses Ctrl-C once the first batch is written
    def interrupt(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr("grid_reingest_cli.progress.Progress.advance", interrupt)
    path = ids_file("".join(f"{grid_id(i)}\n" for i in range(350)))
    # When
    code = run("upload-ids", "--table", table.name, "--parallel", "1", path)
    # Then
    out = capsys.readouterr()
    assert code == 130
    written = table.count(S.NOT_STARTED)
    assert 0 < written < 350
    assert "interrupted after dealing with" in out.out
    assert f"written     {written:>12,}" in out.out
    assert "interrupted" in out.err


def test_upload_ids_says_what_it_wrote_when_aws_fails(table, ids_file, monkeypatch, capsys):
    # Given a table that refuses writes after the first call of 25 ids
    from grid_reingest_cli import common

    real_client = common.client

    class RefusingAfterOneCall:
        def __init__(self, client):
            self._client, self.calls = client, 0

        def __getattr__(self, name):
            return getattr(self._client, name)

        def batch_execute_statement(self, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                    "BatchExecuteStatement",
                )
            return self._client.batch_execute_statement(**kwargs)

    monkeypatch.setattr(
        common, "client", lambda *a, **k: RefusingAfterOneCall(real_client(*a, **k))
    )
    path = ids_file("".join(f"{grid_id(i)}\n" for i in range(80)))
    # When
    code = run("upload-ids", "--table", table.name, "--workers", "1", path)  # --parallel's old name
    # Then
    out = capsys.readouterr()
    assert code == 1
    assert "stopped by an error after dealing with 25 of 80 id(s)" in out.out
    assert "written               25" in out.out
    assert "AccessDeniedException" in out.err
    assert table.count(S.NOT_STARTED) == 25


def test_upload_ids_names_a_directory_and_an_unreadable_input(table, tmp_path, capsys):
    assert run("upload-ids", "--table", table.name, str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err


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
    # Given more items than the confirmation threshold (lowered to keep the test small)
    monkeypatch.setattr("grid_reingest_cli.reset.CONFIRM_ABOVE", 5)
    table.put_new([grid_id(i) for i in range(6)])
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run("reset", "--table", table.name, "--from", "0", "--to", "2") == 2
    assert "pass --yes" in capsys.readouterr().err
    assert table.count(S.NOT_STARTED) == 6
    # A wrong answer on a terminal changes nothing; the table's name goes on
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert run("reset", "--table", table.name, "--from", "0", "--to", "2") == 2
    assert table.count(S.NOT_STARTED) == 6
    monkeypatch.setattr("builtins.input", lambda prompt: table.name)
    assert run("reset", "--table", table.name, "--from", "0", "--to", "2") == 0
    assert table.count(S.NOT_FOUND) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "42"], "unknown progress state '42'"),
        (["--from", "4", "--to", "1"], "only a worker may put an item in a claim state"),
        (["--from", "4", "--to", "5"], "only a worker may put an item in a claim state"),
        (["--from", "7", "--to", "6"], "only batch-check marks an image verified"),
        (["--from", "8", "--to", "3"], "were not published"),
        (["--from", "1"], "a running worker holds those items; add --expired-only"),
        (["--from", "0,5"], "a running worker holds those items"),
        (["--from", "0"], "nothing to do"),
        ([], "--from STATE[,STATE...] is required"),
    ],
)
def test_reset_refuses_bad_states(table, capsys, args, message):
    assert run("reset", "--table", table.name, *args) == 2
    assert message in capsys.readouterr().err


# -- usage ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["upload-ids", "scan-statuses", "stats", "reset", "start", "stop", "watch", "failures"],
)
def test_each_command_run_bare_prints_its_usage(command, capsys):
    assert run(command) == 2
    assert f"usage: reingest {command}" in capsys.readouterr().err


def test_every_command_has_its_script_that_runs_it():
    # Every command `reingest` has, as the README promises: scripts/<command>
    commands = set(_subparsers(build_parser()))
    assert commands <= {p.name for p in (ROOT / "scripts").iterdir()}
    for script in sorted(commands):
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


# -- scan-statuses: triage columns and outputs that are not plain files ----------


def test_scan_statuses_with_errors_adds_attempts_and_last_error(table, capsys):
    table.put_new([grid_id(1), grid_id(2)])
    table.apply(
        [
            Transition(
                grid_id(1), S.NOT_STARTED, S.UNKNOWN_ERROR, attempts=3, error="loader:\tHTTP 502\n"
            )
        ]
    )
    assert run("scan-statuses", "--table", table.name, "--with-errors", "-") == 0
    lines = sorted(capsys.readouterr().out.splitlines())
    assert lines == [f"{grid_id(1)}\t8\t3\tloader: HTTP 502", f"{grid_id(2)}\t0\t0\t"]


def test_scan_statuses_force_keeps_a_symlink_and_writes_where_it_points(table, tmp_path):
    table.put_new([grid_id(1)])
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert run("scan-statuses", "--table", table.name, "--force", str(link)) == 0
    assert link.is_symlink()
    assert real.read_text() == f"{grid_id(1)} 0\n"


def test_scan_statuses_force_writes_into_a_fifo_in_place(table, tmp_path):
    # Given a FIFO with a reader (a device or a pipe must not become a plain file)
    table.put_new([grid_id(1)])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    # When
    assert run("scan-statuses", "--table", table.name, "--force", str(fifo)) == 0
    reader.join(timeout=30)
    # Then
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == [f"{grid_id(1)} 0\n"]


@pytest.mark.parametrize(
    ("output", "message"),
    [("/etc/hostname/out.txt", "does not exist"), ("/proc/version", "already exists")],
)
def test_scan_statuses_refuses_an_output_it_cannot_write(table, capsys, output, message):
    assert run("scan-statuses", "--table", table.name, output) == 2
    assert message in capsys.readouterr().err


def test_scan_statuses_into_a_closed_pipe_exits_quietly(table, aws):
    # Given more rows than a pipe holds, read by a reader that stops after one line
    table.put_new([grid_id(i) for i in range(2500)])
    command = [sys.executable, "-m", "grid_reingest_cli", "scan-statuses", "--table", table.name]
    with subprocess.Popen(
        [*command, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}
    ) as process:
        process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    # Then the shell's exit code for it, and nothing said: the reader took what it wanted
    assert code == 141
    assert err == ""


# -- failures ----------------------------------------------------------------


@pytest.fixture
def failed(table):
    """12 failed items: 6 loader 502s (ids in the messages), 4 timeouts, 2 too big."""
    table.put_new([grid_id(i) for i in range(14)])
    moves = [
        Transition(
            grid_id(i), S.NOT_STARTED, S.UNKNOWN_ERROR, error=f"loader: HTTP 502 for {grid_id(i)}"
        )
        for i in range(6)
    ]
    moves += [
        Transition(grid_id(i), S.NOT_STARTED, S.KNOWN_ERROR, error=f"timeout after {i}.5 s")
        for i in range(6, 10)
    ]
    moves += [Transition(grid_id(i), S.NOT_STARTED, S.TOO_BIG) for i in range(10, 12)]
    assert all(table.apply(moves))
    return table


def test_failures_groups_by_cause_largest_first(failed, capsys):
    assert run("failures", "--table", failed.name) == 0
    out = capsys.readouterr().out
    assert "12 failed item(s)" in out
    first, second = out.index("loader: HTTP 502 for <id>"), out.index("timeout after <n> s")
    assert first < second
    loader = group_id(8, "loader: HTTP 502 for <id>")
    assert re.search(rf"1\. {loader} +6 +50\.0% +state 8 +loader: HTTP 502 for <id>", out)
    assert f"e.g. {grid_id(0)}, {grid_id(1)}, {grid_id(2)}" in out
    assert f"reingest reset --reason ID moves it back to 0 (ID as listed, e.g. {loader})" in out


def test_failures_json_has_the_documented_shape(failed, capsys):
    assert run("failures", "--table", failed.name, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 12
    assert [g["count"] for g in data["groups"]] == [6, 4, 2]
    assert data["groups"][0] == {
        "id": "8-3d9fd31b",
        "reason": "loader: HTTP 502 for <id>",
        "states": [8],
        "count": 6,
        "share": 0.5,
        "examples": [grid_id(0), grid_id(1), grid_id(2)],
    }
    assert list(data["groups"][0])[:4] == ["id", "reason", "states", "count"]
    assert data["groups"][2]["reason"] == "(no error recorded)"


def test_failures_state_picks_the_states(failed, capsys):
    assert run("failures", "--table", failed.name, "--state", "4", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["total"], data["groups"][0]["states"]) == (4, [4])


def test_failures_export_writes_the_ids_of_one_group(failed, tmp_path, capsys):
    out = tmp_path / "ids.txt"
    timeouts = group_id(4, "timeout after <n> s")
    assert run("failures", "--table", failed.name, "--reason", timeouts, "--export", str(out)) == 0
    assert sorted(out.read_text().splitlines()) == [grid_id(i) for i in range(6, 10)]
    assert f"wrote 4 id(s) of group {timeouts}" in capsys.readouterr().out


def test_failures_export_takes_a_number_with_the_states_it_was_numbered_over(
    failed, tmp_path, capsys
):
    out = tmp_path / "ids.txt"
    args = ["--reason", "2", "--state", "4,7,8,9001", "--export", str(out)]
    assert run("failures", "--table", failed.name, *args) == 0
    assert sorted(out.read_text().splitlines()) == [grid_id(i) for i in range(6, 10)]


def test_failures_reason_alone_shows_just_that_group(failed, capsys):
    too_big = group_id(9001, "(no error recorded)")
    assert run("failures", "--table", failed.name, "--reason", too_big, "--json") == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [(g["id"], g["count"]) for g in groups] == [(too_big, 2)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "9", "--state", "4,7,8,9001"], "--reason 9: there are 3 group(s)"),
        (["--export", "x.txt"], "--export needs --reason ID"),
        (["--reason", "8-3d9fd31b", "--export", "/etc/hostname/x"], "does not exist"),
        (["--state", "77"], "unknown progress state '77'"),
        (["--reason", "2"], "or the number with the --state list `failures` used"),
        (["--reason", "2", "--export", "x.txt"], "(its default: --state 4,7,8,9001)"),
        (["--reason", "loader"], "'loader' is not a group id (like 8-1f3a9c0d"),
        (["--reason", "77-0123abcd"], "77 is not a progress state"),
        (["--reason", "0"], "group numbers start at 1"),
    ],
)
def test_failures_refuses_bad_input(failed, capsys, args, message):
    assert run("failures", "--table", failed.name, *args) == 2
    assert message in capsys.readouterr().err


def test_failures_an_id_that_matches_nothing_names_the_groups_there_are(failed, capsys):
    assert run("failures", "--table", failed.name, "--reason", "8-00000000") == 2
    err = capsys.readouterr().err
    assert "--reason 8-00000000: no group in states 4,7,8,9001 has that id" in err
    assert re.search(r"\n +8-3d9fd31b +6 in 8 +loader: HTTP 502 for <id>\n", err)
    assert re.search(rf"\n +{group_id(4, 'timeout after <n> s')} +4 in 4 +timeout after <n> s", err)


def test_reset_reason_moves_just_that_group(failed, capsys):
    # When the timeouts' group is reset by its id
    assert run("reset", "--table", failed.name, "--reason", group_id(4, "timeout after <n> s")) == 0
    # Then only those are back at 0
    assert "moved 4 item(s)" in capsys.readouterr().out
    assert failed.counts([S.NOT_STARTED, S.KNOWN_ERROR, S.UNKNOWN_ERROR, S.TOO_BIG]) == {
        S.NOT_STARTED: 6,
        S.KNOWN_ERROR: 0,
        S.UNKNOWN_ERROR: 6,
        S.TOO_BIG: 2,
    }


def test_reset_expired_only_frees_only_claims_older_than_the_lease(table, capsys):
    # Given 3 claims of a dead worker, then (2 s later) 2 claims of a live one
    table.put_new([grid_id(i) for i in range(5)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 3, "dead")
    time.sleep(2.1)
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 2, "alive")
    # When
    args = ["--from", "1", "--expired-only", "--lease-seconds", "2"]
    assert run("reset", "--table", table.name, *args) == 0
    # Then
    assert "moved 3 item(s)" in capsys.readouterr().out
    assert table.counts([S.NOT_STARTED, S.IN_PROGRESS]) == {S.NOT_STARTED: 3, S.IN_PROGRESS: 2}


def test_reset_says_what_it_moved_when_interrupted(table, monkeypatch, capsys):
    table.put_new([grid_id(i) for i in range(40)])
    table.apply([Transition(grid_id(i), S.NOT_STARTED, S.KNOWN_ERROR) for i in range(40)])

    def interrupt(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr("grid_reingest_cli.progress.Progress.advance", interrupt)
    code = run("reset", "--table", table.name, "--from", "4", "--parallel", "1")
    out = capsys.readouterr().out
    moved = table.count(S.NOT_STARTED)
    assert code == 130
    assert 0 < moved < 40
    assert f"interrupted: moved {moved} item(s)" in out


# -- failure groups: the same group for `failures` and `reset` ------------------


@pytest.fixture
def mixed(table):
    """Failures whose numbering differs with the states listed:
    over 4,7,8,9001: 5 corrupt (4), 4 no response (8), 3 too big (9001), 2 leases 500 (8);
    over 8 alone: no response, then leases."""
    kinds = [
        (S.KNOWN_ERROR, "image-loader: HTTP 500: org.im4java.core.CommandException", 5),
        (S.UNKNOWN_ERROR, "image-loader: no response after 300 s", 4),
        (S.TOO_BIG, "record of 2000000 bytes > 1048576", 3),
        (S.UNKNOWN_ERROR, "leases: HTTP 500: boom", 2),
    ]
    ids = iter(range(100))
    moves = []
    for state, error, count in kinds:
        for _ in range(count):
            image_id = grid_id(next(ids))
            table.put_new([image_id])
            moves.append(Transition(image_id, S.NOT_STARTED, state, error=error))
    assert all(table.apply(moves))
    return table


def listed(table, capsys, *args: str) -> list[dict]:
    assert run("failures", "--table", table.name, "--json", *args) == 0
    return json.loads(capsys.readouterr().out)["groups"]


def at_rest(table) -> set[str]:
    return {i for page in table.scan() for i, state in page if state == S.NOT_STARTED}


def test_reset_reason_number_over_its_own_states_does_not_move_another_group(mixed, capsys):
    # Given `failures` lists "no response" as group 2
    second = listed(mixed, capsys)[1]
    assert second["reason"] == "image-loader: no response after <n> s"
    # When the operator resets "group 2" from state 8, as the help suggested
    code = run("reset", "--table", mixed.name, "--reason", "2", "--from", "8")
    # Then nothing moved: a number means nothing without the states it was counted over
    assert code == 2
    assert "--state" in capsys.readouterr().err
    assert at_rest(mixed) == set()


def test_reset_reason_number_that_shifted_onto_too_big_is_refused(mixed, capsys):
    # Given group 2 reset with the same --state `failures` used
    every = ("--state", "4,7,8,9001")
    assert run("reset", "--table", mixed.name, "--reason", "2", *every) == 0
    assert len(at_rest(mixed)) == 4
    capsys.readouterr()
    # When "group 2" is reset again: the numbers shifted, it is now the too-big group
    code = run("reset", "--table", mixed.name, "--reason", "2", *every)
    # Then state 9001 is not moved by a number (it cannot succeed as it is)
    assert code == 2
    assert "9001" in capsys.readouterr().err
    assert len(at_rest(mixed)) == 4


def test_reset_reason_id_moves_exactly_the_group_failures_listed(mixed, tmp_path, capsys):
    # Given the group `failures` lists second, and its ids as `failures --export` writes them
    second = listed(mixed, capsys)[1]
    exported = tmp_path / "ids.txt"
    export = ["--reason", second["id"], "--export", str(exported)]
    assert run("failures", "--table", mixed.name, *export) == 0
    capsys.readouterr()
    # When that group is reset by its id
    assert run("reset", "--table", mixed.name, "--reason", second["id"]) == 0
    # Then its reason and count came first, and exactly its items moved
    out = capsys.readouterr().out
    announced = f"4 in group {second['id']}, 8 (blacklisted because of unknown failure): "
    assert out.index(announced + second["reason"]) < out.index("moved 4 item(s)")
    assert at_rest(mixed) == set(exported.read_text().split()) == {grid_id(i) for i in range(5, 9)}


def test_group_ids_stay_the_same_when_other_groups_move(mixed, capsys):
    # Given the groups as listed
    before = {g["reason"]: g["id"] for g in listed(mixed, capsys)}
    # When one of them is reset
    assert run("reset", "--table", mixed.name, "--reason", listed(mixed, capsys)[1]["id"]) == 0
    capsys.readouterr()
    # Then the others keep their ids (their numbers moved)
    after = {g["reason"]: g["id"] for g in listed(mixed, capsys)}
    assert len(after) == 3
    assert after.items() <= before.items()
    # And a group of another --state list is found by its id alone
    known = listed(mixed, capsys, "--state", "4")[0]["id"]
    assert run("reset", "--table", mixed.name, "--reason", known, "--dry-run") == 0
    assert "would move 5 item(s)" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--dry-run", "--yes"])
def test_reset_reason_prints_the_groups_reason_and_count_first(mixed, capsys, flag):
    leases = group_id(8, "leases: HTTP 500: boom")
    assert run("reset", "--table", mixed.name, "--reason", leases, flag) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"           2 in group {leases}, 8 (blacklisted because of unknown failure): "
        "leases: HTTP 500: boom\n"
    )


def test_reset_reason_too_big_moves_only_when_9001_is_named(mixed, capsys):
    too_big = group_id(9001, "record of <n> bytes > <n>")
    # When the too-big group is reset by its id alone
    assert run("reset", "--table", mixed.name, "--reason", too_big) == 2
    # Then it is refused, saying why and what to pass, after naming the group
    out, err = capsys.readouterr()
    assert f"3 in group {too_big}, 9001 (too big, putting back down)" in out
    assert "were over the size limit" in err
    assert "To move them anyway, add --from 9001" in err
    assert at_rest(mixed) == set()
    # And with --from 9001 it moves
    assert run("reset", "--table", mixed.name, "--reason", too_big, "--from", "9001") == 0
    assert len(at_rest(mixed)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "8-00000000"], "no group in states 4,7,8,9001 has that id"),
        (["--reason", "4-789949bb", "--from", "8"], "which --from 8 does not name"),
        (["--reason", "2", "--from", "8"], "or the number with the --state list"),
        (["--reason", "9", "--state", "8"], "--reason 9: there are 2 group(s) in states 8"),
        (["--from", "8", "--state", "8"], "--state goes with --reason N"),
        (["--reason", "4-789949bb", "--to", "5"], "only a worker may put an item"),
        (["--reason", "4-789949bb", "--to", "4"], "only the --to state, nothing to do"),
    ],
)
def test_reset_reason_refuses_what_it_cannot_do_and_moves_nothing(mixed, capsys, args, message):
    assert run("reset", "--table", mixed.name, *args) == 2
    assert message in capsys.readouterr().err
    assert at_rest(mixed) == set()


def test_reset_reason_unknown_id_names_the_groups_there_are(mixed, capsys):
    assert run("reset", "--table", mixed.name, "--reason", "8-00000000") == 2
    err = capsys.readouterr().err
    for reason, state, count in [
        ("image-loader: HTTP 500: org.im4java.core.CommandException", 4, 5),
        ("image-loader: no response after <n> s", 8, 4),
        ("record of <n> bytes > <n>", 9001, 3),
        ("leases: HTTP 500: boom", 8, 2),
    ]:
        assert re.search(
            rf"\n +{group_id(state, reason)} +{count} in {state} +{re.escape(reason)}", err
        )


def test_failures_and_reset_leave_out_an_item_with_a_reserved_id(failed, tmp_path, capsys):
    # Given an item with a reserved id in state 8 (as an older upload could leave it)
    failed.put_new(["~control"])
    error = f"loader: HTTP 502 for {grid_id(99)}"
    assert failed.apply([Transition("~control", S.NOT_STARTED, S.UNKNOWN_ERROR, error=error)])
    loader = group_id(8, "loader: HTTP 502 for <id>")
    # When its group is listed, exported and reset
    assert run("failures", "--table", failed.name, "--json") == 0
    out, err = capsys.readouterr()
    out_file = tmp_path / "ids.txt"
    assert (
        run("failures", "--table", failed.name, "--reason", loader, "--export", str(out_file)) == 0
    )
    assert run("reset", "--table", failed.name, "--reason", loader) == 0
    # Then no group holds it, and the operator is told
    assert json.loads(out)["groups"][0]["count"] == 6
    assert "1 item(s) in states 4,7,8,9001 have a reserved id" in err
    assert "~control" not in out_file.read_text()
    assert failed.get("~control")["progress_state"] == S.UNKNOWN_ERROR
    assert failed.count(S.NOT_STARTED) == 2 + 6  # the fixture left 2 at 0
    # Nor does a reset of the whole state move it
    assert run("reset", "--table", failed.name, "--from", "8", "--yes") == 0
    assert failed.get("~control")["progress_state"] == S.UNKNOWN_ERROR
