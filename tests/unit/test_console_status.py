"""What the console computes without AWS: rates, ETAs, idle reasons, next steps, the plan."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import pytest

from benchmarks import pass_sim
from benchmarks.pass_sim import CDK_JSON
from grid_reingest.domain.control import Knobs
from grid_reingest_cli import clients, passes, plan, prices, status
from grid_reingest_cli.control import _rate
from infra.config import load_stage_config


def test_rate_meter_measures_over_its_window_only():
    # Given readings a minute apart: 10/min, then 100/min
    meter = status.RateMeter(window_s=120)
    assert meter.add(0, 0) is None
    meter.add(60, 10)
    meter.add(120, 20)
    # When a faster minute comes and the window slides
    rate = meter.add(180, 120)
    # Then the rate is over the last two minutes, not since the start
    assert rate == pytest.approx((120 - 10) / 2)


def test_rate_meter_never_reports_negative_progress_after_a_reset():
    meter = status.RateMeter(window_s=300)
    meter.add(0, 50)
    assert meter.add(60, 10) == 0


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"rule": "DISABLED", "paused": True}, "rule off"),
        ({"rule": "ENABLED", "paused": True}, "paused"),
        ({"rule": "ENABLED", "iterator_age_s": None}, "no iterator-age data"),
        ({"rule": "ENABLED", "iterator_age_s": 95.0}, "back-pressure: iterator age 95 s > 60 s"),
        ({"rule": "ENABLED", "iterator_age_s": 5.0}, None),
    ],
)
def test_idle_reason_names_what_stops_batch_index(kwargs, reason):
    given = {"paused": False, "iterator_age_s": 1.0, "threshold_s": 60.0, "streams_known": True}
    assert status.idle_reason("index", **{**given, **kwargs}) == reason


def test_idle_reason_of_batch_check_ignores_thralls_lag():
    assert (
        status.idle_reason(
            "check",
            rule="ENABLED",
            paused=False,
            iterator_age_s=500.0,
            threshold_s=60.0,
            streams_known=True,
        )
        is None
    )


def test_worker_view_eta_and_done():
    view = status.worker_view(
        "index",
        rule="ENABLED",
        remaining=300,
        held=10,
        done=100,
        rate_per_minute=60.0,
        blocked_by=None,
    )
    assert view.status == "working" and view.eta_seconds == 300
    assert view.share == 0.25
    done = status.worker_view(
        "index",
        rule="DISABLED",
        remaining=0,
        held=0,
        done=400,
        rate_per_minute=None,
        blocked_by="rule off",
    )
    assert done.status == "done"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (42, "42 s"),
        (125, "2 min 05 s"),
        (3 * 3600 + 300, "3 h 05 min"),
        (2 * 86400 + 4 * 3600, "2 d 04 h"),
    ],
)
def test_duration_reads_like_an_operator_would_say_it(seconds, text):
    assert status.duration(seconds) == text


@pytest.mark.parametrize(
    ("enabled", "has_work", "step"),
    [(True, False, "watch"), (True, True, "watch"), (False, True, "start"), (False, False, "skip")],
)
def test_next_step_follows_starts_or_skips(enabled, has_work, step):
    assert passes.next_step(enabled, has_work) == step


def test_start_warns_of_no_work_and_of_index_still_working():
    assert passes.start_warnings("index", has_work=True, index_left=0) == []
    (nothing,) = passes.start_warnings("index", has_work=False, index_left=0)
    assert "nothing to do" in nothing
    (early,) = passes.start_warnings("check", has_work=True, index_left=12)
    assert "batch-index still has 12 item(s)" in early
    (unknown,) = passes.start_warnings("check", has_work=True, index_left=None)
    assert "batch-index still has work" in unknown


@pytest.mark.parametrize(
    ("text", "per_minute"), [("600", 600), ("600/min", 600), ("10/s", 600), ("36000/h", 600)]
)
def test_rates_in_any_unit_become_per_minute(text, per_minute):
    assert _rate(text) == per_minute


def test_aws_region_wins_over_aws_default_region(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert clients.region(argparse.Namespace(region=None)) == "eu-west-2"
    assert clients.region(argparse.Namespace(region="ap-south-1")) == "ap-south-1"


def deployed(**knobs) -> plan.Deployed:
    return plan.Deployed(
        memory_mb=plan.FALLBACK_MEMORY_MB,
        grid_concurrency=32,
        lambda_projector=True,
        knobs=Knobs(**knobs),
        warm_writes_per_s=None,
        upload_parallel=16,
    )


def test_plan_is_set_by_the_lowest_of_the_ceilings():
    # 32 in flight at 2 s is 960/min; a Grid takes ~1,200/min; a 300/min ceiling is lowest
    assert plan.estimate(1000, deployed(), 2.0).rate_per_minute == 960
    capped = plan.estimate(1000, deployed(max_rate_per_minute=300), 2.0)
    assert capped.rate_per_minute == 300 and capped.index_seconds == 200


def test_plan_rate_is_little_s_law_over_the_deployment_s_ceiling():
    # Given PROD as cdk.json deploys it: the pass's ceiling is the lower of the Grid
    # concurrency setting and image-projection's reserved concurrency
    config = load_stage_config(json.loads(CDK_JSON.read_text())["context"], "PROD")
    ceiling = min(config.grid_concurrency, config.projection_reserved_concurrency)
    assert config.pass_in_flight == ceiling
    prod = replace(deployed(), grid_concurrency=config.grid_concurrency, pass_in_flight=ceiling)
    # When the plan is made at 5 s an image (slow enough that the ceiling sets the rate)
    result = plan.estimate(100_000, prod, 5.0)
    # Then the rate is what is in flight over the latency, as the simulator's deployment has it
    assert prod.in_flight == ceiling == pass_sim.deployment("PROD").in_flight
    assert result.rate_per_minute == min(ceiling * 60 / 5.0, prices.GRID_REFERENCE_PER_MINUTE)
    # and the operator's --max-in-flight lowers it, never raises it
    lower = replace(prod, knobs=Knobs(max_in_flight=10))
    higher = replace(prod, knobs=Knobs(max_in_flight=ceiling * 4))
    assert plan.estimate(100_000, lower, 5.0).rate_per_minute == 10 * 60 / 5.0
    assert higher.in_flight == ceiling
    # and batch-check runs beside batch-index: the pass takes the longer, not the sum
    assert result.pass_seconds == max(result.index_seconds, result.check_seconds)


def test_plan_counts_fourteen_write_units_and_one_record_an_image():
    result = plan.estimate(10_000, deployed(), 2.0)
    assert result.write_units == 140_000
    assert result.kinesis_records == result.kinesis_payload_units == 10_000
    assert result.total_usd == pytest.approx(
        result.dynamodb_usd
        + result.lambda_usd
        + result.kinesis_usd
        + result.tally_usd
        + result.watch_usd
    )


def test_plan_prices_lambda_on_arm64_as_deployed():
    arm = plan.estimate(1_000_000, deployed(), 2.0)
    x86 = plan.estimate(1_000_000, replace(deployed(), architecture="x86_64"), 2.0)
    # Graviton's GB-second is 20% cheaper; the requests cost the same
    assert arm.gb_seconds == x86.gb_seconds
    assert arm.lambda_usd < x86.lambda_usd
    assert arm.gb_seconds * prices.LAMBDA_GB_SECOND.value == pytest.approx(
        arm.lambda_usd - arm.lambda_requests * prices.LAMBDA_REQUEST.value
    )
    # and image-projection, a Lambda, is most of it
    assert arm.projection_usd / arm.lambda_usd > 0.9


def test_plan_times_the_upload_by_what_limits_it():
    # 16 batches of 100 in flight, 4 calls of 30 ms each: 13,333 ids/s; one process's CPU
    # sends ~13,000; a new on-demand table takes 4,000 writes/s: the table sets it
    result = plan.estimate(40_000_000, deployed(), 2.0)
    assert result.upload_set_by.startswith("the table's write throughput")
    assert result.upload_seconds == pytest.approx(40_000_000 / 4000)
    warm = plan.estimate(40_000_000, replace(deployed(), warm_writes_per_s=40_000), 2.0)
    assert warm.upload_set_by.startswith("botocore's CPU")
    assert warm.upload_seconds == pytest.approx(40_000_000 / 13_000)
    few = plan.estimate(40_000_000, replace(deployed(), upload_parallel=2), 2.0)
    assert few.upload_set_by.startswith("2 batches of 100 in flight")
    # a file the table takes in its first second goes at the client's rate
    small = plan.estimate(2_000, deployed(), 2.0)
    assert small.upload_set_by.startswith("botocore's CPU") and not small.needs_warming


def test_plan_prices_watching_the_whole_pass_every_minute():
    result = plan.estimate(40_000_000, deployed(), 2.0)
    active = result.upload_seconds + result.pass_seconds  # index and check together
    assert result.watch_looks == math.ceil(active / 60)
    per_look = 17 * prices.DYNAMODB_READ_UNIT.value + prices.CLOUDWATCH_REQUEST.value
    assert result.watch_usd == pytest.approx(result.watch_looks * per_look)
    # far below the pass's own DynamoDB writes
    assert result.watch_usd < result.dynamodb_usd / 100


def test_plan_warns_about_warming_only_when_the_upload_outruns_the_table():
    assert plan.estimate(1_000_000, deployed(), 2.0).needs_warming
    assert not plan.estimate(1_000, deployed(), 2.0).needs_warming
