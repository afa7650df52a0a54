"""What the console counts and says before a pass starts, against moto's server: the tally
(one read a look, totals that add up while items move), the exact recount and its price, a
paused stage, and a lease table batch-index cannot read."""

from __future__ import annotations

import json

import pytest

from devtools.local_lambda import environment
from devtools.local_streams import StreamPoller
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.adapters.dynamodb.tally import TallyTable
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.control import Knobs
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.handlers import state_counts
from grid_reingest_cli import counting, stats, watch
from grid_reingest_cli.main import main
from tests.integration.console_harness import FakeWorkers, deploy_stage, grid_id


def reingest(*argv: str) -> int:
    return main(list(argv))


def ids(n: int) -> list[str]:
    return [grid_id(i) for i in range(1, n + 1)]


@pytest.fixture
def stage(aws, table):
    return deploy_stage(aws, table)


@pytest.fixture
def poller(aws, table):
    """Lambda's poller and state-counts, as deployed, for the test's table."""
    env = {
        "STATE_TABLE_NAME": table.name,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    with environment(env):
        state_counts.runtime.reset()
        state_counts.runtime()
        yield StreamPoller(aws, table.name, state_counts.handler)
    state_counts.runtime.reset()


# -- the tally -------------------------------------------------------------------


def test_watch_totals_add_up_to_the_table_while_items_move(stage, poller, monkeypatch, capsys):
    # Given 120 ids moving 23 at a time through index and check, the tally kept as they move
    image_ids = ids(120)
    stage.table.put_new(image_ids)
    poller.drain()
    stage.events.enable_rule(Name=stage.rules["index"])
    workers = FakeWorkers(stage, image_ids, per_tick=23)

    def tick(seconds):
        workers(seconds)
        poller.drain()
        if stage.rule("index") == "DISABLED" and "check" not in workers.ticks:
            stage.events.enable_rule(Name=stage.rules["check"])

    monkeypatch.setattr(watch, "sleep", tick)
    # When watch follows the pass
    code = reingest("watch", "--stage", "TEST", "--output", "json", "--interval", "1")
    # Then every look counts 120, read from the tally, and the last sees them all verified
    looks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert len(looks) > 10
    assert {look["total"] for look in looks} == {120}
    assert {look["countedBy"] for look in looks} == {"tally"}
    assert looks[-1]["states"] == {"6": {"name": S.VERIFIED.label, "count": 120}}


def test_a_look_reads_one_item_whatever_the_table_holds(stage, poller):
    # Given a counted table of 200 items
    stage.table.put_new(ids(200))
    poller.drain()
    calls: list[str] = []
    stage.table.client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    # When the console counts it
    counted = counting.StateCounter(stage.table).count()
    # Then it read the tally alone: no query, no scan
    assert counted.by == "tally" and counted.counts == {0: 200}
    assert calls == ["DescribeTable", "GetItem"]


def test_stats_reads_the_tally_and_says_how_old_it_is(stage, poller, capsys):
    stage.table.put_new(ids(5))
    poller.drain()
    assert reingest("stats", "--stage", "TEST") == 0
    out = capsys.readouterr().out
    assert "5 item(s) in" in out
    assert "counted by the tally, its last write counted" in out


def test_stats_without_a_tally_scans_and_says_why(stage, capsys):
    # Given writes that state-counts has not counted yet
    stage.table.put_new(ids(4))
    # When / Then the counts are exact all the same, and say how they were taken
    assert reingest("stats", "--stage", "TEST", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["total"] == 4 and shown["countedBy"] == "scan"
    assert "no tally yet" in shown["whyNotTally"]


def test_stats_exact_prints_its_price_first_then_compares_with_the_tally(stage, poller, capsys):
    # Given a tally that missed two items moving (it began after they were there)
    stage.table.put_new(ids(6))
    poller.drain()
    TallyTable(stage.table.name, stage.table.client).add("missed", {0: -2, 3: 2})
    # When an exact recount is asked for
    assert reingest("stats", "--stage", "TEST", "--exact") == 0
    lines = capsys.readouterr().out.splitlines()
    # Then its price comes first, then the recount, then how the tally differs
    assert lines[0].startswith(f"recounting {stage.table.name} by a scan: ~")
    assert "read units, $" in lines[0]
    assert any(line.startswith("6 item(s) in") for line in lines)
    assert "0: tally 4, recount 6; 3: tally 2, recount 0" in lines[-1]


def test_stats_exact_save_replaces_a_wrong_tally_on_a_quiet_table(
    stage, poller, monkeypatch, capsys
):
    monkeypatch.setattr(stats, "SETTLE_SECONDS", 0)
    stage.table.put_new(ids(6))
    poller.drain()
    TallyTable(stage.table.name, stage.table.client).add("missed", {0: -7, 6: 7})
    assert reingest("stats", "--stage", "TEST") == 0
    assert "the tally is incomplete" in capsys.readouterr().out
    # When the recount is saved
    assert reingest("stats", "--stage", "TEST", "--exact", "--save") == 0
    assert "saved: the tally now holds this recount (6 items)" in capsys.readouterr().out
    # Then the tally is right again and the console trusts it
    assert counting.StateCounter(stage.table).count() == counting.Counted(
        {0: 6}, "tally", TallyTable(stage.table.name, stage.table.client).read().updated_at
    )


def test_stats_exact_save_refuses_when_writes_were_counted_meanwhile(
    stage, poller, monkeypatch, capsys
):
    # Given a batch of writes counted while the table is being recounted
    monkeypatch.setattr(stats, "SETTLE_SECONDS", 0)
    stage.table.put_new(ids(3))
    poller.drain()
    scan = counting.exact_counts

    def busy(table, segments=8):
        found = scan(table, segments)
        stage.table.put_new(ids(5))
        poller.drain()
        return found

    monkeypatch.setattr(counting, "exact_counts", busy)
    # When / Then nothing is saved, and the operator is told why
    assert reingest("stats", "--stage", "TEST", "--exact", "--save") == 1
    assert "writes were counted while the table was scanned" in capsys.readouterr().err
    assert TallyTable(stage.table.name, stage.table.client).read().held() == {0: 5}


def test_stats_exact_save_refuses_while_a_schedule_is_on(stage, poller, capsys):
    stage.events.enable_rule(Name=stage.rules["index"])
    assert reingest("stats", "--stage", "TEST", "--exact", "--save") == 2
    assert "`reingest stop --stage TEST` first" in capsys.readouterr().err


# -- a paused stage --------------------------------------------------------------


def test_run_on_a_paused_stage_says_so_and_points_to_resume(stage, ids_path, capsys):
    # Given a paused pass
    ControlTable(stage.table.name, stage.table.client).set_knobs(Knobs(paused=True), Knobs())
    # When the operator runs a pass on it
    code = reingest("run", ids_path(ids(3)), "--stage", "TEST")
    # Then it says so at once, points to resume, and uploads and starts nothing
    err = capsys.readouterr().err
    assert code == 2
    assert "the pass is paused" in err and "`reingest resume --stage TEST`" in err
    assert stage.table.count(S.NOT_STARTED) == 0
    assert stage.rule("index") == "DISABLED"


def test_start_on_a_paused_stage_warns_and_points_to_resume(stage, capsys):
    stage.table.put_new(ids(2))
    ControlTable(stage.table.name, stage.table.client).set_knobs(Knobs(paused=True), Knobs())
    assert reingest("start", "--stage", "TEST") == 0
    err = capsys.readouterr().err
    assert "warning: the pass is paused" in err
    assert "`reingest resume --stage TEST`" in err


def test_run_interrupted_while_paused_points_to_resume(stage, ids_path, monkeypatch, capsys):
    # Given a run whose pass gets paused from another terminal, then Ctrl-C
    def pause_then_interrupt(seconds):
        ControlTable(stage.table.name, stage.table.client).set_knobs(Knobs(paused=True), Knobs())
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "sleep", pause_then_interrupt)
    code = reingest("run", ids_path(ids(2)), "--stage", "TEST", "--interval", "1")
    err = capsys.readouterr().err
    assert code == 130
    assert "`reingest resume --stage TEST`" in err
    assert "reingest pause" not in err


# -- thrall's lease table --------------------------------------------------------


@pytest.fixture
def lease_stage(aws, table, dynamodb):
    """A stage whose batch-index reads thrall's lease table `thrall-leases`."""
    stage = deploy_stage(aws, table, THRALL_CHECKPOINT_TABLE="thrall-leases")
    stage.table.put_new(ids(2))
    return stage


def make_lease_table(dynamodb, checkpoint: str) -> None:
    dynamodb.create_table(
        TableName="thrall-leases",
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(
        TableName="thrall-leases",
        Item={"leaseKey": {"S": "shardId-000000000000"}, "checkpoint": {"S": checkpoint}},
    )


@pytest.mark.parametrize(
    ("checkpoint", "problem"),
    [
        (None, "ResourceNotFoundException"),
        ("bogus", "checkpoint 'bogus' is neither a sequence number"),
    ],
)
def test_start_says_at_once_when_thralls_lease_table_cannot_be_read(
    lease_stage, dynamodb, capsys, checkpoint, problem
):
    # Given a lease table that is missing, or holds a checkpoint that is not one
    if checkpoint is not None:
        make_lease_table(dynamodb, checkpoint)
    # When batch-index is started
    assert reingest("start", "--stage", "TEST") == 0
    # Then it is started, with a warning naming the table, the problem and what follows
    err = capsys.readouterr().err
    assert lease_stage.rule("index") == "ENABLED"
    assert "warning: thrall's lease table thrall-leases cannot be read" in err
    assert problem in err
    assert "pace on CloudWatch's iterator age, minutes late" in err
    assert "grid-reingest-batch-index-checkpoints-unread-TEST" in err


@pytest.mark.parametrize("checkpoint", [None, "bogus"])
def test_run_says_at_once_when_thralls_lease_table_cannot_be_read(
    lease_stage, dynamodb, ids_path, monkeypatch, capsys, checkpoint
):
    if checkpoint is not None:
        make_lease_table(dynamodb, checkpoint)

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "sleep", interrupt)
    assert reingest("run", ids_path(ids(2)), "--stage", "TEST", "--interval", "1") == 130
    err = capsys.readouterr().err
    # Before anything else: the warning is the first line
    assert err.splitlines()[0].startswith(
        "warning: thrall's lease table thrall-leases cannot be read"
    )


def test_a_readable_lease_table_gives_no_warning(lease_stage, dynamodb, capsys):
    make_lease_table(dynamodb, "49654373411429787343592539423547233867312094327611457586")
    assert reingest("start", "--stage", "TEST") == 0
    assert "lease table" not in capsys.readouterr().err


def test_watch_confirms_a_worker_done_on_the_index_not_on_a_late_tally(stage, poller, capsys):
    # Given a finished pass (rules off, all at 6), the tally still showing one held at 5
    stage.table.put_new(ids(2))
    stage.table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED) for i in ids(2)])
    poller.drain()
    TallyTable(stage.table.name, stage.table.client).add("late", {6: -1, 5: 1})
    # When watch looks once
    assert reingest("watch", "--stage", "TEST", "--once", "--output", "json") == 0
    look = json.loads(capsys.readouterr().out)
    # Then the pass is done: the index holds nothing in 5, whatever the tally says
    assert look["workers"]["check"]["held"] == 1
    assert look["done"] is True
