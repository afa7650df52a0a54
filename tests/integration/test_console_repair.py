"""`reingest run --missing-only` over the real workers on the emulator and the simulated Grid:
only what media-api lacks is re-projected, and the pass's report says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devtools.local_stage import local_stage
from devtools.testing import grid_id
from grid_reingest.adapters.dynamodb.passes import PassTable
from grid_reingest.domain.passes import Kind, Pass, Status
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import watch
from grid_reingest_cli.main import main


@pytest.fixture
def stage(aws, table, grid, monkeypatch):
    # One serial "minute" at a time: batch-check's invocation waits for the missing ids
    # batch-index can only send on the next tick, so a short invocation keeps it brief
    # (75 s less batch-check's margin of 70: 5 s of checking a tick).
    stage, schedule = local_stage(
        aws,
        table,
        grid,
        MAX_IN_FLIGHT="32",
        CHECK_MAX_IN_FLIGHT="32",
        CHECK_STOP_MARGIN_SECONDS="70",
    )
    schedule.timeout_seconds = 75.0
    monkeypatch.setattr(watch, "sleep", schedule)
    return stage, schedule


def run(path, *flags):
    argv = ["run", str(path), "--stage", "TEST", "--interval", "1", "--output", "json"]
    return main([*argv, *flags])


def last_report(capsys):
    return json.loads(capsys.readouterr().out.splitlines()[-1])


@pytest.mark.slow
def test_run_missing_only_reprojects_only_what_media_api_lacks(
    stage, table, grid, tmp_path, capsys
):
    # Given 60 ids, 40 of which media-api has and 20 it lacks (each image costs the
    # emulator ~0.1 s of serial writes: a few dozen show the split as well as hundreds)
    _, schedule = stage
    ids = [grid_id(i) for i in range(1, 61)]
    grid.index_all = False
    grid.indexed.update(ids[:40])
    path = tmp_path / "originals.txt"
    path.write_text("\n".join(ids) + "\n")
    # When the repair is run
    code = run(path, "--missing-only")
    # Then only the 20 missing were projected, once each
    projected = {i for (endpoint, i), n in grid.image_counts.items() if endpoint == "projection"}
    assert projected == set(ids[40:])
    assert grid.endpoint_counts["projection"] == 20
    # and all 60 ended verified, the report saying present 40, repaired 20, failed 0
    assert code == 0
    report = last_report(capsys)
    assert report["states"] == {str(int(S.VERIFIED)): 60}
    assert (report["present"], report["repaired"], report["failed"]) == (40, 20, 0)
    assert report["kind"] == "check-first"
    record = PassTable(table.name, table.client).current()
    assert record.status is Status.FINISHED and record.report.present == 40
    assert record.report.gb_seconds > 0  # the workers' invocations, as they ran
    assert not schedule.errors
    # And `reingest passes` shows it
    assert main(["passes", "--table", table.name]) == 0
    listed = capsys.readouterr().out
    assert "present in media-api: 40; repaired: 20; failed: 0" in listed
    assert "cost so far: $" in listed
    # When the same file is run again as a new pass
    assert run(path, "--missing-only", "--new-pass") == 0
    # Then every id was re-armed and checked again, all present now: nothing re-projected
    again = last_report(capsys)
    assert (again["present"], again["repaired"], again["failed"]) == (60, 0, 0)
    assert again["pass"] != report["pass"]
    assert grid.endpoint_counts["projection"] == 20
    assert grid.endpoint_counts["image"] >= 140  # 60 + 20 + 60 checks


def started_pass(table, source, kind=Kind.CHECK_FIRST):
    passes = PassTable(table.name, table.client)
    return passes.start(Pass.start(kind, str(source), T0, started_by="schedule"))


T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def nothing_written(table, stage):
    assert sum(table.counts().values()) == 0
    assert stage[0].rule("index") == stage[0].rule("check") == "DISABLED"


def test_run_missing_only_refuses_a_file_of_bad_ids_before_recording_a_pass(
    stage, table, tmp_path, capsys
):
    path = tmp_path / "originals.txt"
    path.write_text("id\n" + grid_id(1) + "\nABCDEF\n")
    assert run(path, "--missing-only") == 2
    err = capsys.readouterr().err
    assert "originals.txt:1: a header line" in err and "2 invalid line(s)" in err
    assert PassTable(table.name, table.client).current() is None
    nothing_written(table, stage)


def test_run_missing_only_refuses_standard_input(stage, table, capsys, monkeypatch):
    assert run("-", "--missing-only") == 2
    assert "--missing-only takes a file, not standard input" in capsys.readouterr().err
    assert PassTable(table.name, table.client).current() is None


def test_run_new_pass_is_refused_while_a_pass_runs(stage, table, tmp_path, capsys):
    # Given a pass the schedule started, still running
    path = tmp_path / "ids.txt"
    path.write_text(grid_id(1) + "\n")
    running = started_pass(table, "s3://images")
    # When an operator starts a new one, or another repair of another source
    for flags in (["--new-pass"], ["--missing-only", "--new-pass"], ["--missing-only"]):
        assert run(path, *flags) == 2
        err = capsys.readouterr().err
        # Then it is refused, naming the pass that runs, and nothing is written
        assert f"pass {running.id} (check-first, from s3://images" in err
        assert "one pass at a time" in err and "nothing was uploaded" in err
    nothing_written(table, stage)
    assert PassTable(table.name, table.client).current().id == running.id
