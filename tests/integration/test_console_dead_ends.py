"""Dead ends a new user met, each closed: an endpoint that does not answer, a URL that is
not one, options beyond sense, a closed pipe, files the umask should shape, a verified
item's old error, a bare `tune`, an empty name, `--debug` after the command, and what
`watch` said of a worker finishing or a limit that rose."""

from __future__ import annotations

import argparse
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import clients
from grid_reingest_cli.control import pace_line
from grid_reingest_cli.main import main
from tests.integration.console_harness import deploy_stage, grid_id

ROOT = Path(__file__).resolve().parents[2]


def reingest(*argv: str) -> int:
    return main(list(argv))


def ids(n: int) -> list[str]:
    return [grid_id(i) for i in range(1, n + 1)]


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- endpoints -----------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_at_once_naming_it(capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    code = reingest("stats", "--table", "t", "--endpoint-url", url)
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    assert elapsed < 10
    assert f"cannot reach {url}" in err and "check --endpoint-url and the network" in err


def test_an_unreachable_endpoint_from_the_environment_is_named_as_such(monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    assert reingest("watch", "--table", "t", "--once") == 1
    assert "check AWS_ENDPOINT_URL and the network" in capsys.readouterr().err


def test_the_commands_clients_time_out_connecting_and_reading(aws):
    made = clients.client(argparse.Namespace(endpoint_url=aws), "dynamodb")
    assert made.meta.config.connect_timeout == clients.CONNECT_TIMEOUT_S <= 5
    assert made.meta.config.read_timeout == clients.READ_TIMEOUT_S


@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1", "http://", "http://h:port"])
def test_a_malformed_endpoint_url_is_a_usage_error(url, capsys):
    assert reingest("stats", "--table", "t", "--endpoint-url", url) == 2
    assert "is not" in capsys.readouterr().err


def test_a_malformed_aws_endpoint_url_is_a_usage_error_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "notaurl")
    assert reingest("stats", "--table", "t") == 2
    err = capsys.readouterr().err
    assert "AWS_ENDPOINT_URL: 'notaurl' is not" in err and "unexpected" not in err


# -- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "--table", "t", "--interval", "1e12"],
        ["watch", "--table", "t", "--window", "1e9"],
        ["watch", "--table", "t", "--max-iterator-age", "1e12"],
        ["tune", "--table", "t", "--max-in-flight", "10000"],
        ["tune", "--table", "t", "--max-rate", "1000000/min"],
        ["stats", "--table", "t", "--parallel", "100000"],
        ["plan", "ids.txt", "--table", "t", "--projection-seconds", "1e6"],
        ["scan-statuses", "--table", "t", "--segments", "5000", "-"],
        ["reset", "--table", "t", "--from", "8", "--lease-seconds", "1e9"],
        ["ids", "diff", "a", "b", "--memory-mb", "1e12"],
        ["stats", "--table", ""],
        ["stats", "--stage", " "],
        ["start", "--rule", ""],
    ],
)
def test_a_value_beyond_sense_is_refused_before_anything(argv, capsys):
    assert reingest(*argv) == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_an_empty_table_name_is_said_as_such(capsys):
    assert reingest("stats", "--table", "") == 2
    err = capsys.readouterr().err
    assert "--table is empty" in err and "grid-reingest-None" not in err


def test_debug_may_come_after_the_command(table, capsys):
    assert reingest("stats", "--table", table.name, "--debug") == 0
    assert reingest("--debug", "stats", "--table", table.name) == 0


def test_an_id_file_named_debug_after_a_double_dash_stays_a_file(table, tmp_path, capsys):
    assert reingest("upload-ids", "--table", table.name, "--dry-run", "--", "--debug") == 2
    assert "--debug: no such file" in capsys.readouterr().err


# -- a closed pipe -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["stats", "--table", "{table}"],
        ["scan-statuses", "--table", "{table}", "--with-errors", "-"],
        ["failures", "--table", "{table}", "--state", "8"],
        ["watch", "--table", "{table}", "--once"],
        ["ids", "diff", "{ids}", "/dev/null"],
    ],
)
def test_a_reader_that_goes_away_ends_every_command_quietly(table, aws, tmp_path, argv):
    # Given a reader that has gone before the command writes (`| head -0`: a command takes
    # a second to start, the pipe is closed at once)
    table.put_new(ids(20))
    table.apply([Transition(i, S.NOT_STARTED, S.UNKNOWN_ERROR, error="x") for i in ids(20)])
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in ids(100)))
    argv = [a.format(table=table.name, ids=ids_file) for a in argv]
    process = subprocess.Popen(
        [sys.executable, "-m", "grid_reingest_cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    # Then nothing is said, and the shell's code for a closed pipe (help, short and
    # buffered, is flushed at exit without complaint)
    assert err == ""
    assert process.returncode == (0 if argv == ["--help"] else 141)


# -- files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_have_the_mode_the_umask_gives(table, tmp_path, umask, mode):
    table.put_new(ids(2))
    out = tmp_path / "statuses.txt"
    old = os.umask(umask)
    try:
        assert reingest("scan-statuses", "--table", table.name, str(out)) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_a_replaced_output_file_keeps_its_mode(table, tmp_path):
    out = tmp_path / "statuses.txt"
    out.write_text("old")
    out.chmod(0o640)
    assert reingest("scan-statuses", "--table", table.name, str(out), "--force") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_verified_items_error_reads_as_before_its_success(table, tmp_path):
    # Given an image that failed once, then was verified
    table.put_new(ids(2))
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.NOT_STARTED, error="leases: HTTP 500")])
    table.apply([Transition(grid_id(2), S.NOT_STARTED, S.NOT_STARTED, error="leases: HTTP 500")])
    table.apply([Transition(grid_id(1), S.NOT_STARTED, S.VERIFIED)])
    out = tmp_path / "statuses.tsv"
    # When the statuses are written for triage
    assert reingest("scan-statuses", "--table", table.name, "--with-errors", str(out)) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in out.read_text().splitlines()}
    # Then the verified one's error is history; the other's is its current error
    assert rows[grid_id(1)][3] == "(before success) leases: HTTP 500"
    assert rows[grid_id(2)][3] == "leases: HTTP 500"


# -- tune, watch ----------------------------------------------------------------------


def test_bare_tune_shows_the_knobs_and_the_controller(table, capsys):
    ControlTable(table.name, table.client).set_knobs(Knobs(max_in_flight=24), Knobs())
    assert reingest("tune", "--table", table.name) == 0
    out = capsys.readouterr().out
    assert "knobs: running; ceilings: max 24 in flight" in out
    assert "controller: no decision recorded yet" in out
    assert "no change" not in out and "ceilings unchanged" not in out


def test_pause_and_tune_show_the_knobs_after_the_change(table, capsys):
    assert reingest("pause", "--table", table.name) == 0
    assert "knobs: PAUSED; ceilings: none" in capsys.readouterr().out
    assert reingest("tune", "--table", table.name, "--max-rate", "600/min") == 0
    assert "knobs: PAUSED; ceilings: max 600/min" in capsys.readouterr().out


def test_a_worker_finishing_with_its_rule_off_says_so_once(aws, table, capsys):
    # Given batch-index's rule off while it still holds 3 images
    deploy_stage(aws, table)
    table.put_new(ids(5))
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 3, "worker")
    # When watch looks
    assert reingest("watch", "--stage", "TEST", "--once") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("batch-index"))
    # Then its rule is said once, and what it is doing
    assert line.count("rule off") == 1
    assert "working (rule off) (finishing the 3 it holds)" in line


def test_a_limit_that_rose_since_the_last_look_is_not_called_cut():
    # Given a look at 8 in flight, then one at 16 whose last decision was a cut (from 24)
    before = PaceState(8, None, "headroom: limit raised")
    now = Control(pace=PaceState(16, None, "latency 900 ms over baseline 300 ms; limit cut"))
    # Then the line says how the limit moved, and that the reason is the last decision's
    line = pace_line(now, before)
    assert "16 in flight (up from 8 a look before)" in line
    assert "last decision: latency 900 ms over baseline 300 ms; limit cut" in line
    assert "last decision" not in pace_line(now, PaceState(16, None, "x"))
