"""The operator's console — run, plan, watch, pause/resume/tune, start's warnings and the
aws-cli habits — as an operator runs it, against moto's server."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import boto3
import pytest

from devtools.thrall_metrics import report_iterator_age
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.control import Knobs, PaceState
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import watch
from grid_reingest_cli.main import main
from tests.integration.console_harness import STREAM, FakeWorkers, deploy_stage, grid_id

ROOT = Path(__file__).resolve().parents[2]


def reingest(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def stage(aws, table):
    return deploy_stage(aws, table)


def ids(n: int) -> list[str]:
    return [grid_id(i) for i in range(1, n + 1)]


# -- pause / resume / tune -----------------------------------------------------------


def test_pause_sets_the_knob_and_says_what_workers_will_do(table, capsys):
    # Given a running pass whose controller has decided a limit
    ControlTable(table.name, table.client).save_pace(PaceState(12, 300.0, "headroom: +1"), 0)
    # When the operator pauses it
    code = reingest("pause", "--table", table.name)
    # Then the control item says paused, the output what changed and what happens next
    out = capsys.readouterr().out
    assert code == 0
    assert ControlTable(table.name, table.client).read().knobs.paused
    assert "paused: no -> yes" in out
    assert "stop claiming within a minute, give back what they have not started" in out
    assert "controller: 12 in flight, 300/min — headroom: +1" in out


def test_resume_after_pause_clears_it_and_a_second_resume_changes_nothing(table, capsys):
    # Given a paused pass
    reingest("pause", "--table", table.name)
    capsys.readouterr()
    # When it is resumed twice
    assert reingest("resume", "--table", table.name) == 0
    first = capsys.readouterr().out
    assert reingest("resume", "--table", table.name) == 0
    second = capsys.readouterr().out
    # Then the first resumes and the second says there was nothing to do
    assert not ControlTable(table.name, table.client).read().knobs.paused
    assert "paused: yes -> no" in first
    assert "no change" in second and "not paused" in second


def test_tune_sets_and_clears_ceilings_keeping_the_pause(table, capsys):
    # Given a paused pass
    reingest("pause", "--table", table.name)
    # When ceilings are set (a rate in any unit), then one is lifted
    assert (
        reingest("tune", "--table", table.name, "--max-in-flight", "32", "--max-rate", "10/s") == 0
    )
    set_out = capsys.readouterr().out
    assert reingest("tune", "--table", table.name, "--clear", "max-rate", "--output", "json") == 0
    shown = json.loads(capsys.readouterr().out)
    # Then the knobs are as asked, the pause kept, and each change was printed
    knobs = ControlTable(table.name, table.client).read().knobs
    assert knobs == Knobs(paused=True, max_in_flight=32, max_rate_per_minute=None)
    assert "max in flight: none -> 32" in set_out
    assert "max rate: none -> 600/min" in set_out
    assert shown["knobs"] == {"paused": True, "maxInFlight": 32, "maxRatePerMinute": None}
    assert shown["changes"] == ["max rate: 600/min -> none"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-rate", "fast"], "'fast' is not a rate"),
        (["--max-rate", "0/min"], "must be between 1/min"),
        (["--max-in-flight", "0"], "must be between 1 and"),
        (["--max-in-flight", "2.5"], "is not a whole number"),
        (["--max-in-flight", "4", "--clear", "max-in-flight"], "pick one"),
    ],
)
def test_tune_refuses_bad_ceilings_and_changes_nothing(table, capsys, argv, message):
    # When a ceiling is not one
    code = reingest("tune", "--table", table.name, *argv)
    # Then exit 2, the reason, and the control item untouched
    assert code == 2
    assert message in capsys.readouterr().err
    assert ControlTable(table.name, table.client).read().knobs == Knobs()


def test_scan_statuses_leaves_out_the_control_item(table, capsys):
    # Given a paused pass: the table holds the control item beside the images
    table.put_new(ids(2))
    reingest("pause", "--table", table.name)
    capsys.readouterr()
    # When every item's state is listed
    assert reingest("scan-statuses", "--table", table.name, "-") == 0
    # Then only the images are
    assert sorted(capsys.readouterr().out.split()) == sorted([*ids(2), "0", "0"])


# -- watch ---------------------------------------------------------------------------


def test_watch_json_shows_controller_idle_reasons_and_only_states_that_hold_items(
    stage, aws, capsys
):
    # Given a pass with work left, a controller's decision, a paused batch-index and
    # thrall far behind
    stage.table.put_new(ids(3))
    store = ControlTable(stage.table.name, stage.table.client)
    store.save_pace(PaceState(8, None, "iterator age rising: x0.5"), 0)
    store.set_knobs(Knobs(paused=True))
    stage.events.enable_rule(Name=stage.rules["index"])
    report_iterator_age(boto3.client("cloudwatch", endpoint_url=aws), STREAM, 95_000)
    # When watch looks once, for a script
    code = reingest("watch", "--stage", "TEST", "--once", "--output", "json", "--stream", STREAM)
    # Then one JSON object says it all
    look = json.loads(capsys.readouterr().out)
    assert code == 0
    assert look["states"] == {"0": {"name": "at rest", "count": 3}}
    assert look["controller"]["limit"] == 8
    assert look["controller"]["reason"] == "iterator age rising: x0.5"
    assert look["iteratorAge"]["seconds"] == 95
    assert look["workers"]["index"]["status"] == "idle"
    assert look["workers"]["index"]["reason"] == "paused"
    assert look["workers"]["check"]["reason"] == "rule off"


@pytest.mark.parametrize(
    ("age_ms", "reason"),
    [(95_000, "back-pressure: iterator age 95 s > 60 s"), (None, "no iterator-age data")],
)
def test_watch_says_why_batch_index_is_idle(stage, aws, capsys, age_ms, reason):
    # Given batch-index on, with work, and thrall's iterator age high or missing
    stage.table.put_new(ids(2))
    stage.events.enable_rule(Name=stage.rules["index"])
    if age_ms is not None:
        report_iterator_age(boto3.client("cloudwatch", endpoint_url=aws), STREAM, age_ms)
    # When watch looks once
    assert reingest("watch", "--stage", "TEST", "--once", "--stream", STREAM) == 0
    # Then it says why batch-index takes no work
    out = capsys.readouterr().out
    assert f"batch-index  idle (rule on): {reason}; 2 left" in out


def test_watch_reads_the_stream_and_threshold_from_the_deployed_batch_index(aws, table, capsys):
    # Given a stage whose batch-index watches a stream with a 30 s threshold
    stage = deploy_stage(
        aws,
        table,
        THRALL_STREAM_NAME=f"arn:aws:kinesis:eu-west-1:123456789012:stream/{STREAM}",
        MAX_ITERATOR_AGE_MS="30000",
    )
    stage.table.put_new(ids(1))
    stage.events.enable_rule(Name=stage.rules["index"])
    report_iterator_age(boto3.client("cloudwatch", endpoint_url=aws), STREAM, 45_000)
    # When watch looks once, with no --stream
    assert reingest("watch", "--stage", "TEST", "--once") == 0
    # Then the stack's stream and threshold are used
    assert "back-pressure: iterator age 45 s > 30 s" in capsys.readouterr().out


def test_watch_measures_a_rate_and_an_eta_and_stops_when_both_workers_are_done(
    stage, monkeypatch, capsys
):
    # Given batch-index running over 40 ids, 10 at each wait, then batch-check
    image_ids = ids(40)
    stage.table.put_new(image_ids)
    stage.events.enable_rule(Name=stage.rules["index"])
    workers = FakeWorkers(stage, image_ids, per_tick=10)

    def tick(seconds):
        workers(seconds)
        if stage.rule("index") == "DISABLED" and workers.ticks.count("check") == 0:
            stage.events.enable_rule(Name=stage.rules["check"])

    monkeypatch.setattr(watch, "sleep", tick)
    clock = iter(range(0, 6000, 60))
    monkeypatch.setattr(watch, "clock", lambda: next(clock))
    # When watch follows the pass, for a script
    code = reingest("watch", "--stage", "TEST", "--output", "json", "--interval", "60")
    # Then the looks carry a rate and an ETA, and the last one is done
    looks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    second = looks[1]["workers"]["index"]
    assert second["ratePerMinute"] == 10
    assert second["remaining"] == 30 and second["etaSeconds"] == 30 * 60 / 10
    assert looks[-1]["done"] is True
    assert looks[-1]["states"] == {"6": {"name": S.VERIFIED.label, "count": 40}}


def test_watch_gives_the_whole_pass_rate_and_eta_with_checking_included(stage, monkeypatch, capsys):
    # Given batch-index and batch-check running together over 40 ids, 10 each at each wait
    image_ids = ids(40)
    stage.table.put_new(image_ids)
    for worker in ("index", "check"):
        stage.events.enable_rule(Name=stage.rules[worker])
    monkeypatch.setattr(watch, "sleep", FakeWorkers(stage, image_ids, per_tick=10))
    clock = iter(range(0, 6000, 60))
    monkeypatch.setattr(watch, "clock", lambda: next(clock))
    # When watch follows the pass, for a script
    code = reingest("watch", "--stage", "TEST", "--output", "json", "--interval", "60")
    # Then the pass's rate counts checked images, and its ETA is what is left at that rate
    looks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert looks[1]["pass"] == {
        "finished": 10,
        "remaining": 30,
        "ratePerMinute": 10,
        "etaSeconds": 30 * 60 / 10,
    }
    assert looks[-1]["pass"]["remaining"] == 0 and looks[-1]["done"] is True


def test_watch_on_a_terminal_draws_a_progress_bar(stage, capsys, monkeypatch):
    # Given batch-index on, half done
    stage.table.put_new(ids(4))
    stage.table.apply([Transition(grid_id(i), S.NOT_STARTED, S.ENQUEUED) for i in (1, 2)])
    stage.events.enable_rule(Name=stage.rules["index"])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    # When watch looks once
    assert reingest("watch", "--stage", "TEST", "--once") == 0
    # Then batch-index has a bar at 50%
    assert "[###############...............]  50.0%" in capsys.readouterr().out


def test_watch_interrupted_exits_130_without_a_traceback(stage, monkeypatch, capsys):
    # Given a watch of a running pass that the operator interrupts at its first wait
    stage.table.put_new(ids(1))
    stage.events.enable_rule(Name=stage.rules["index"])

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "sleep", interrupt)
    # When
    code = reingest("watch", "--stage", "TEST")
    # Then
    err = capsys.readouterr().err
    assert code == 130
    assert "reingest watch: error: interrupted" in err and "Traceback" not in err


def test_watch_names_a_missing_rule_in_one_line(aws, table, capsys):
    # Given a stack whose rules were deleted
    stage = deploy_stage(aws, table)
    stage.events.delete_rule(Name=stage.rules["index"])
    # When watch looks
    code = reingest("watch", "--stage", "TEST", "--once")
    # Then one line, no traceback
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "does not exist" in err and "unexpected" not in err


# -- start ------------------------------------------------------------------------


def test_start_warns_when_the_worker_has_nothing_to_do(stage, capsys):
    # Given an empty table, When batch-index is started
    assert reingest("start", "--stage", "TEST") == 0
    # Then it starts, with a warning
    captured = capsys.readouterr()
    assert stage.rule("index") == "ENABLED"
    assert "warning: batch-index has nothing to do" in captured.err


def test_start_check_warns_while_batch_index_still_has_work(stage, capsys):
    # Given ids still at 0 and some at 3
    stage.table.put_new(ids(3))
    stage.table.apply([Transition(grid_id(1), S.NOT_STARTED, S.ENQUEUED)])
    # When batch-check is started
    assert reingest("start", "--stage", "TEST", "--worker", "check") == 0
    # Then it warns that batch-index has 2 to do, and not that check has nothing
    err = capsys.readouterr().err
    assert "batch-index still has 2 item(s) to do" in err
    assert "nothing to do" not in err


# -- run ----------------------------------------------------------------------------


def test_run_does_a_whole_pass_and_exits_0_when_every_image_is_verified(
    stage, ids_path, monkeypatch, capsys
):
    # Given 30 ids and workers that do their part
    image_ids = ids(30)
    workers = FakeWorkers(stage, image_ids)
    monkeypatch.setattr(watch, "sleep", workers)
    # When the operator runs the pass
    code = reingest("run", ids_path(image_ids), "--stage", "TEST", "--interval", "1")
    # Then it uploads, runs index and check together, reports, and exits 0
    out = capsys.readouterr().out
    assert code == 0
    assert stage.table.count(S.VERIFIED) == 30
    assert workers.ticks == ["index", "check"]
    assert stage.rule("index") == stage.rule("check") == "DISABLED"
    assert "-- report" in out and "failures: none" in out
    assert "finished in this run: 30 image(s)" in out


def test_run_exits_3_and_lists_the_failures_when_some_images_do_not_reach_6(
    stage, ids_path, monkeypatch, capsys
):
    # Given a pass where two images fail for good
    image_ids = ids(10)
    monkeypatch.setattr(watch, "sleep", FakeWorkers(stage, image_ids, fail=set(image_ids[:2])))
    # When, for a script
    code = reingest(
        "run", ids_path(image_ids), "--stage", "TEST", "--interval", "1", "--output", "json"
    )
    # Then exit 3, and the report (the last JSON line) says so
    captured = capsys.readouterr()
    report = json.loads(captured.out.splitlines()[-1])
    assert code == 3
    assert report["states"] == {"6": 8, "8": 2} and report["complete"] is False
    assert "2 image(s) did not reach 6" in captured.err


def test_run_interrupted_then_run_again_carries_on_without_uploading_over_progress(
    stage, ids_path, monkeypatch, capsys
):
    # Given a pass interrupted after batch-index has done 10 of 30, and batch-check those 10
    image_ids = ids(30)
    path = ids_path(image_ids)
    workers = FakeWorkers(stage, image_ids, per_tick=10)

    def interrupt(tick):
        if tick == 2:
            raise KeyboardInterrupt

    workers.on_tick = interrupt
    monkeypatch.setattr(watch, "sleep", workers)
    assert reingest("run", path, "--stage", "TEST", "--interval", "1") == 130
    assert "Run the same command again to carry on" in capsys.readouterr().err
    assert stage.table.count(S.VERIFIED) == 10
    assert stage.rule("index") == stage.rule("check") == "ENABLED"
    # When it is run again
    workers.on_tick = None
    code = reingest("run", path, "--stage", "TEST", "--interval", "1")
    # Then the 10 verified were not uploaded back to 0, both were followed, not restarted,
    # and the pass finished
    out = capsys.readouterr().out
    assert code == 0
    assert "already holds 30 item(s): carrying on" in out
    assert "batch-index: already running" in out and "batch-check: already running" in out
    assert stage.table.count(S.VERIFIED) == 30
    assert workers.ticks == ["index", "check"] * 3


def test_run_does_not_start_again_a_worker_that_finished(stage, ids_path, monkeypatch, capsys):
    # Given a pass whose batch-index finished (everything at 3, its rule off)
    image_ids = ids(5)
    stage.table.put_new(image_ids)
    stage.table.apply([Transition(i, S.NOT_STARTED, S.ENQUEUED) for i in image_ids])
    workers = FakeWorkers(stage, image_ids)
    monkeypatch.setattr(watch, "sleep", workers)
    # When the pass is run again
    code = reingest("run", ids_path(image_ids), "--stage", "TEST", "--interval", "1")
    # Then only batch-check ran
    assert code == 0
    assert workers.ticks == ["check"]
    assert "batch-index: nothing to do" in capsys.readouterr().out


def test_run_on_prod_without_a_terminal_or_yes_writes_nothing(aws, table, ids_path, capsys):
    # Given the PROD stage
    stage = deploy_stage(aws, table, name="PROD")
    # When run without --yes and without a terminal to ask on
    code = reingest("run", ids_path(ids(3)), "--stage", "PROD")
    # Then it refuses before any write
    assert code == 2
    assert "needs the stage name typed on a terminal" in capsys.readouterr().err
    assert sum(table.counts().values()) == 0
    assert stage.rule("index") == "DISABLED"


@pytest.mark.parametrize(("typed", "code"), [("prod", 2), ("PROD", 0)])
def test_run_on_prod_asks_for_the_stage_name(
    aws, table, ids_path, monkeypatch, capsys, typed, code
):
    # Given the PROD stage and an operator at a terminal
    stage = deploy_stage(aws, table, name="PROD")
    image_ids = ids(3)
    monkeypatch.setattr(watch, "sleep", FakeWorkers(stage, image_ids))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: typed)
    # When run, the operator types the name
    result = reingest("run", ids_path(image_ids), "--stage", "PROD", "--interval", "1")
    # Then only the exact name goes on
    assert result == code
    assert sum(table.counts().values()) == (3 if code == 0 else 0)


def test_run_dry_run_is_the_plan_and_changes_nothing(stage, ids_path, capsys):
    # When
    code = reingest("run", ids_path(ids(7)), "--stage", "TEST", "--dry-run")
    # Then the plan, and nothing written
    assert code == 0
    assert "DynamoDB writes" in capsys.readouterr().out
    assert sum(stage.table.counts().values()) == 0


def test_run_names_a_missing_file_before_writing(stage, tmp_path, capsys):
    assert reingest("run", str(tmp_path / "nope.txt"), "--stage", "TEST", "--yes") == 2
    assert "nope.txt: no such file" in capsys.readouterr().err
    assert stage.rule("index") == "DISABLED"


# -- plan ------------------------------------------------------------------------------


def test_plan_prices_a_pass_from_the_deployed_memory_and_the_ceilings(aws, table, ids_path, capsys):
    # Given a stage whose batch-index has 1 GB, 32 images in flight, a 600/min ceiling
    deploy_stage(aws, table, GRID_CONCURRENCY="32", PROJECTION_FUNCTION_NAME="projection")
    ControlTable(table.name, table.client).set_knobs(Knobs(max_rate_per_minute=600))
    # When a 1,200-id pass is planned, for a script
    code = reingest("plan", "--stage", "TEST", ids_path(ids(1200)), "--output", "json")
    # Then 14 write units an image, one record each, 2 minutes at the ceiling
    plan = json.loads(capsys.readouterr().out)
    assert code == 0
    assert plan["ids"] == 1200
    assert plan["write_units"] == 1200 * 14
    assert plan["kinesis_records"] == 1200
    assert plan["rate_per_minute"] == 600 and plan["rate_set_by"] == "the --max-rate ceiling"
    assert plan["index_seconds"] == 120
    assert plan["deployed"]["memoryMb"]["batch-index"] == 1024
    assert plan["dynamodb_usd"] > 0 and plan["lambda_usd"] > 0


def test_plan_says_when_the_upload_outruns_a_new_on_demand_table(table, tmp_path, capsys):
    # Given 100,000 ids
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{grid_id(i)}\n" for i in range(100_000)))
    # When planned with the sources
    assert reingest("plan", "--table", table.name, str(path), "--sources") == 0
    # Then warming is called for, with the documented figure and where it comes from
    out = capsys.readouterr().out
    assert "warming         needed" in out
    assert "4,000 writes/s" in out
    assert "initial throughput and scaling properties" in out


# -- aws-cli habits ------------------------------------------------------------------


def test_version_prints_ours_and_botocores(capsys):
    assert reingest("--version") == 0
    assert capsys.readouterr().out.startswith("reingest ")


def test_aws_region_alone_is_honoured(table, monkeypatch, capsys):
    # Given only AWS_REGION (boto3 itself reads AWS_DEFAULT_REGION)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # When, Then the table is found
    assert reingest("stats", "--table", table.name) == 0


def test_no_region_at_all_names_both_variables(aws, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert reingest("stats", "--table", "t") == 2
    assert "set AWS_REGION or AWS_DEFAULT_REGION" in capsys.readouterr().err


def test_endpoint_url_option_points_every_call_at_it(table, aws, monkeypatch, capsys):
    # Given no endpoint in the environment
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    # When the emulator is named on the command line
    assert reingest("pause", "--table", table.name, "--endpoint-url", aws) == 0
    # Then the call reached it
    assert ControlTable(table.name, table.client).read().knobs.paused


def test_stats_takes_output_json(table, capsys):
    table.put_new(ids(2))
    assert reingest("stats", "--table", table.name, "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["total"] == 2


def test_stdin_on_a_terminal_says_it_is_reading(table, monkeypatch, capsys):
    # Given ids typed at a terminal
    terminal = io.TextIOWrapper(io.BytesIO(f"{grid_id(1)}\n".encode()))
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", terminal)
    # When
    assert reingest("plan", "--table", table.name, "-") == 0
    # Then the operator is told what is happening
    assert "reading ids from standard input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "--table", "t", "--interval", "-1"],
        ["watch", "--table", "t", "--interval", "nan"],
        ["watch", "--table", "t", "--window", "0"],
        ["run", "ids.txt"],
        ["tune", "--table", "t", "--max-rate", "-5/min"],
    ],
)
def test_bad_arguments_exit_2_with_usage_not_a_traceback(argv, capsys):
    code = reingest(*argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "usage: reingest" in err and "Traceback" not in err


def test_an_unwritable_output_path_is_one_line(table, capsys):
    # /proc takes no new files, even for root
    code = reingest("scan-statuses", "--table", table.name, "/proc/statuses.txt")
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert err.startswith("reingest scan-statuses: error:") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "plan", "pause", "resume", "tune"])
def test_new_commands_run_bare_print_their_usage(command, capsys):
    assert reingest(command) == 2
    assert f"usage: reingest {command}" in capsys.readouterr().err
