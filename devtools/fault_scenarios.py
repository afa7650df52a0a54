"""The fault table's scenarios: one fault each, over a whole pass (devtools/fault_world.py).

Each scenario says what it injects, where the images should end, and what must
tell the operator (an alarm, a metric or a command's exit code). The unit tier
runs them all on a hundred images (tests/unit/test_fault_table.py); the
benchmark on a few hundred, writing docs/reliability.md (benchmarks/faults.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devtools.fault_world import (
    TICK_SECONDS,
    Life,
    PassReport,
    World,
    client_error,
    grid_id,
    huge_image,
    image,
)
from grid_reingest import names
from grid_reingest.adapters.grid import GridResponse
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState as S

INDEX = names.BATCH_INDEX
CHECK = names.BATCH_CHECK
# Ticks (minutes) a fault that comes and goes lasts.
WHILE_TICKS = 3
# A long one: longer than a pass of the unit tier's table takes to go round.
LONG_TICKS = 15
# How many apply() calls the long outage fails: more than record.RECORD_TRIES in a row.
OUTAGE_WRITES = 8


@dataclass(frozen=True)
class Scenario:
    """One fault over a pass: how to inject it, where images must end, who is told."""

    name: str
    fault: str  # in an operator's words
    inject: Callable[[World], None]
    # Final states expected, given the pass's ids: (state, ids) pairs; the rest verified.
    expect: Callable[[World], dict[int, set[str]]] = lambda world: {}
    told: tuple[str, ...] = ()  # alarms, metrics or exit codes that must show
    overlap: int = 1
    extra_ids: int = 0  # ids the scenario adds to the table during the pass
    # The fault is the system's: no image may be charged an attempt for it.
    charges_nothing: bool = False


def _draw(image_id: str, n: int) -> int:
    """A number drawn from an image and the n-th call about it: the same in every run."""
    return int.from_bytes(hashlib.blake2b(f"{image_id}:{n}".encode(), digest_size=4).digest())


def every(world: World, k: int) -> list[str]:
    """Every k-th id of the pass."""
    return world.ids[k - 1 :: k]


def while_ticks(world: World, start: int = 0, ticks: int = WHILE_TICKS) -> bool:
    """Whether the pass is in the ticks the fault lasts (batch-index's first ticks)."""
    return world.phase == "index" and start <= world.tick < start + ticks


# -- the faults -----------------------------------------------------------------------


def _grid_data_once(world: World) -> None:
    failing = set(every(world, 10))

    def leases(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if endpoint == "leases" and image_id in failing and n == 1:
            return GridResponse("leases", 500, message="Internal Server Error")
        return None

    world.grid.faults.append(leases)


def _loader_known(world: World) -> None:
    failing = set(every(world, 25))

    def loader(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if endpoint == "projection" and image_id in failing:
            text = "org.im4java.core.CommandException: convert: corrupt image"
            return GridResponse("image-loader", 500, message=text, text=text)
        return None

    world.grid.faults.append(loader)


def _loader_other_image(world: World) -> None:
    for image_id in every(world, 30):
        world.grid.images[image_id] = image(grid_id(10**6 + int(image_id, 16)))


def _loader_404(world: World) -> None:
    missing = set(every(world, 20))

    def loader(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if endpoint == "projection" and image_id in missing:
            return GridResponse("image-loader", 404, message="not found")
        return None

    world.grid.faults.append(loader)


def _too_big(world: World) -> None:
    # Random bytes do not compress: the record passes 1 MiB whatever gzip does.
    payload = os.urandom(1_200_000).hex()
    for image_id in every(world, 50):
        world.grid.images[image_id] = huge_image(image_id, payload)


def _grid_overload(ticks: int) -> Callable[[World], None]:
    def inject(world: World) -> None:
        def loader(endpoint: str, image_id: str, n: int) -> GridResponse | None:
            if endpoint == "projection" and while_ticks(world, ticks=ticks):
                return GridResponse("image-loader", 503, message="Service Unavailable")
            return None

        world.grid.faults.append(loader)

    return inject


def _media_api_overload(minutes: int) -> Callable[[World], None]:
    def inject(world: World) -> None:
        started: list[float] = []

        def media_api(endpoint: str, image_id: str, n: int) -> GridResponse | None:
            if endpoint != "image" or world.phase != "check":
                return None
            # Minutes on the clock, not invocations: one invocation of batch-check may run
            # for many minutes, asking again what failed.
            started[:] = started or [world.clock.t]
            # One answer in three, whichever image it is for (an overloaded service does not
            # pick its images): drawn from the image and how many times it was asked.
            ending = started[0] + minutes * TICK_SECONDS
            if world.clock.t < ending and _draw(image_id, n) % 3 == 0:
                return GridResponse("media-api", 503, message="Service Unavailable")
            return None

        world.grid.faults.append(media_api)

    return inject


def _lambda_throttles(world: World) -> None:
    def throttle(image_id: str) -> Any:
        if while_ticks(world):
            return client_error("TooManyRequestsException", 429, "Invoke", "Rate exceeded")
        return None

    world.lam.faults.append(throttle)


def _one_image_forever(world: World) -> None:
    lone = world.ids[len(world.ids) // 2]

    def loader(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if endpoint == "projection" and image_id == lone:
            return GridResponse("image-loader", 503, message="Service Unavailable")
        return None

    world.grid.faults.append(loader)


def _tail_usage_503(world: World) -> None:
    # An image with a long history times out at the usage service, every time: those are
    # the images left at the end of the pass, when they are all that fails.
    failing = set(every(world, 12))

    def usages(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if endpoint == "usages" and image_id in failing:
            return GridResponse("usage", 503, message="Service Unavailable")
        return None

    world.grid.faults.append(usages)


def _loader_down(status: int | None) -> Callable[[World], None]:
    """image-loader gives no answer (or `status`) to every image, and its health route too."""

    def inject(world: World) -> None:
        def loader(endpoint: str, image_id: str, n: int) -> GridResponse | None:
            calls_loader = endpoint == "projection" or (
                endpoint == "health" and image_id == "image-loader"
            )
            if calls_loader and while_ticks(world, ticks=LONG_TICKS):
                return GridResponse("image-loader", status, message="down (injected)")
            return None

        world.grid.faults.append(loader)

    return inject


def _media_api_down(world: World) -> None:
    started: list[int] = []

    def media_api(endpoint: str, image_id: str, n: int) -> GridResponse | None:
        if world.phase != "check" or endpoint not in ("image", "health"):
            return None
        started[:] = started or [world.tick]
        if world.tick < started[0] + LONG_TICKS:
            return GridResponse("media-api", None, message="connection refused (injected)")
        return None

    world.grid.faults.append(media_api)


def _loader_key_rotated(world: World) -> None:
    # The key is rotated in the Grid and in the parameter at once, at the 30th projection;
    # image-projection's cache still holds the old one for up to five minutes.
    def rotate(world: World, n: int) -> None:
        if n == 30:
            world.grid.valid_key = world.secret["key"] = "key-2"
            world.note("rotated the Grid's key (and the parameter) to key-2")

    world.on_projection.append(rotate)


def _loader_key_revoked(world: World) -> None:
    # The Grid refuses the workers' key from the 30th projection; the operator puts a new
    # one in the parameter five minutes later.
    revoked_at: list[int] = []

    def revoke(world: World, n: int) -> None:
        if n == 30:
            world.grid.valid_key = "key-2"
            revoked_at.append(world.tick)
            world.note("the Grid revoked key-1, which the workers read")

    def operator(world: World) -> None:
        if revoked_at and world.tick == revoked_at[0] + 5:
            world.secret["key"] = "key-2"
            world.note("put a valid key in the parameter")

    world.on_projection.append(revoke)
    world.on_tick.append(operator)


def _lease_table(error: Callable[[], Exception]) -> Callable[[World], None]:
    """thrall's lease table, which batch-index reads for its pace, raising `error` each read."""

    def inject(world: World) -> None:
        def unreadable() -> dict[str, int]:
            raise error()

        world.checkpoints = unreadable

    return inject


def _cloudwatch_unreadable(world: World) -> None:
    def iterator_age() -> tuple[float, float | None]:
        if while_ticks(world):
            raise client_error("ThrottlingException", 400, "GetMetricStatistics", "Rate exceeded")
        return (1_000.0, 1_000.0)

    world.iterator_age = iterator_age


def _kinesis_refused(world: World) -> None:
    broken = [True]

    def refuse(records: list[dict[str, Any]]) -> Any:
        if broken[0]:
            return client_error(
                "AccessDeniedException", 400, "PutRecords", "not authorized: kinesis:PutRecords"
            )
        return None

    def operator(world: World) -> None:
        # The alarms went off and batch-index switched its own rule off: fix the role, restart.
        if broken[0] and world.phase == "index" and not world.index_rule.enabled:
            broken[0] = False
            world.index_rule.enable()
            world.note("fixed the stream's permissions; switched batch-index back on")

    world.kinesis.faults.append(refuse)
    world.on_tick.append(operator)


def _kinesis_throughput(world: World) -> None:
    def hot(records: list[dict[str, Any]]) -> Any:
        if while_ticks(world):
            return ["ProvisionedThroughputExceededException"] * len(records)
        return None

    world.kinesis.faults.append(hot)


def _enqueued(transitions: list[Transition]) -> bool:
    return any(t.new == S.ENQUEUED for t in transitions)


def _dynamodb_transient(world: World) -> None:
    calls = [0]

    def every_other(transitions: list[Transition]) -> bool:
        if not (_enqueued(transitions) and while_ticks(world)):
            return False
        calls[0] += 1
        return calls[0] % 2 == 1

    world.store.write_faults.append(every_other)


def _dynamodb_outage(world: World) -> None:
    left = [OUTAGE_WRITES]

    def outage(transitions: list[Transition]) -> bool:
        # Starts at the first write of enqueued images; every write fails for a while.
        if left[0] == OUTAGE_WRITES and not _enqueued(transitions):
            return False
        if left[0] > 0:
            left[0] -= 1
            return True
        return False

    world.store.write_faults.append(outage)


def _dies_mid_batch(world: World) -> None:
    world.lives[1] = Life(die_at_projection=40)


def _dies_after_accept(world: World) -> None:
    world.lives[1] = Life(die_after_accepted_call=2)


def _overlapping(world: World) -> None:
    world.overlap = 2


def _pause_resume(world: World) -> None:
    paused_at: list[int] = []

    def pause(world: World, n: int) -> None:
        if n == 60:
            world.pause(True)
            paused_at.append(world.tick)

    def resume(world: World) -> None:
        if paused_at and world.tick == paused_at[0] + WHILE_TICKS + 1:
            world.pause(False)

    world.on_projection.append(pause)
    world.on_tick.append(resume)


def _media_api_revoked(world: World) -> None:
    revoked_at: list[int] = []

    def operator(world: World) -> None:
        if world.index_rule.enabled:
            return  # batch-index still runs: batch-check starts once it is done
        if not revoked_at:
            world.grid.valid_key = "key-2"  # key-1, which the workers read, is revoked
            revoked_at.append(world.tick)
            world.note("media-api revoked the workers' key")
        elif world.tick == revoked_at[0] + WHILE_TICKS and world.secret["key"] != "key-2":
            world.secret["key"] = "key-2"
            world.note("put a valid key in the parameter (workers re-read it each invocation)")

    world.on_tick.append(operator)


def _upload_twice(world: World) -> None:
    new = [grid_id(10**7 + n) for n in range(20)]

    def upload(world: World, n: int) -> None:
        if n == 100:
            written = world.store.put_new(world.ids + new)
            world.note(f"upload-ids again mid-pass (+20 new ids): {written} written")

    world.on_projection.append(upload)


def _reset_from_1(world: World) -> None:
    from grid_reingest_cli.main import main

    def reset(world: World, n: int) -> None:
        if n != 100:
            return
        held = world.store.counts()[S.IN_PROGRESS]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["reset", "--table", "state-TEST", "--from", "1", "--to", "0"])
        first = next((line for line in err.getvalue().splitlines() if line.strip()), "")
        world.note(f"reset --from 1 --to 0 with {held} held: exit {code}: {first.strip()}")
        world.exit_codes.append(code)

    world.on_projection.append(reset)


SCENARIOS: list[Scenario] = [
    Scenario("none", "no fault (the reference)", lambda w: None),
    Scenario(
        "grid-data-once",
        "a Grid data service (leases) answers 500 once, for 1 image in 10",
        _grid_data_once,
        told=(f"{INDEX} Failed",),
    ),
    Scenario(
        "loader-known-failure",
        "image-loader fails with a known permanent error (CommandException), 1 in 25",
        _loader_known,
        expect=lambda w: {int(S.KNOWN_ERROR): set(every(w, 25))},
        told=(f"{INDEX} State4",),
    ),
    Scenario(
        "loader-other-image",
        "image-loader answers with another image's id, 1 in 30",
        _loader_other_image,
        expect=lambda w: {int(S.KNOWN_ERROR): set(every(w, 30))},
        told=(f"{INDEX} State4",),
    ),
    Scenario(
        "loader-404",
        "image-loader answers 404, 1 in 20",
        _loader_404,
        expect=lambda w: {int(S.NOT_FOUND): set(every(w, 20))},
        told=(f"{INDEX} State2",),
    ),
    Scenario(
        "too-big",
        "the record would exceed 1 MiB, 1 in 50",
        _too_big,
        expect=lambda w: {int(S.TOO_BIG): set(every(w, 50))},
        told=(f"{INDEX} State9001",),
    ),
    Scenario(
        "grid-overload",
        f"image-loader answers 503 to every image for {WHILE_TICKS} min",
        _grid_overload(WHILE_TICKS),
        told=(f"{INDEX} OverloadAnswers", f"{INDEX} InfraReleased"),
    ),
    Scenario(
        "grid-overload-long",
        f"image-loader answers 503 to every image for {LONG_TICKS} min",
        _grid_overload(LONG_TICKS),
        told=(f"{INDEX} OverloadAnswers", f"{INDEX} InfraReleased"),
    ),
    Scenario(
        "media-api-overload",
        f"media-api answers 503 to 1 call in 3 for {WHILE_TICKS} min of batch-check",
        _media_api_overload(WHILE_TICKS),
        told=(f"{CHECK} OverloadAnswers",),
    ),
    Scenario(
        "media-api-overload-long",
        f"media-api answers 503 to 1 call in 3 for {LONG_TICKS} min of batch-check",
        _media_api_overload(LONG_TICKS),
        told=(f"{CHECK} OverloadAnswers",),
    ),
    Scenario(
        "lambda-throttles",
        f"the Lambda service throttles every image-projection invoke for {WHILE_TICKS} min",
        _lambda_throttles,
        told=(f"{names.IMAGE_PROJECTION}-throttles", f"{INDEX} InfraReleased"),
    ),
    Scenario(
        "one-image-forever",
        "one image's loader call answers 503 every time, the others succeed",
        _one_image_forever,
        expect=lambda w: {int(S.UNKNOWN_ERROR): {w.ids[len(w.ids) // 2]}},
        told=(f"{INDEX} State8",),
    ),
    Scenario(
        "tail-503",
        "usage answers 503 every time for 1 image in 12 (a long history timing out); "
        "at the end of the pass they are all that is left",
        _tail_usage_503,
        expect=lambda w: {int(S.UNKNOWN_ERROR): set(every(w, 12))},
        told=(f"{INDEX} State8",),
    ),
    Scenario(
        "loader-down",
        f"image-loader gives no answer to any image, nor on its health route, for {LONG_TICKS} min",
        _loader_down(None),
        told=(f"{INDEX}-systemic-failures", f"{INDEX}-errors"),
        charges_nothing=True,
    ),
    Scenario(
        "loader-500",
        f"image-loader answers 500 to every image, and on its health route, for {LONG_TICKS} min",
        _loader_down(500),
        told=(f"{INDEX}-systemic-failures", f"{INDEX}-errors"),
        charges_nothing=True,
    ),
    Scenario(
        "loader-down-overlapping",
        f"image-loader gives no answer for {LONG_TICKS} min, two invocations at once",
        _loader_down(None),
        told=(f"{INDEX}-systemic-failures", f"{INDEX}-errors"),
        overlap=2,
        charges_nothing=True,
    ),
    Scenario(
        "loader-key-rotated",
        "the Grid's key is rotated (and its parameter) while image-projection holds the old "
        "one in its five-minute cache",
        _loader_key_rotated,
        charges_nothing=True,
    ),
    Scenario(
        "loader-key-revoked",
        "the Grid refuses the workers' key (401) until the operator puts a new one in the "
        "parameter, 5 min later",
        _loader_key_revoked,
        told=(f"{INDEX}-systemic-failures", f"{INDEX}-errors"),
        charges_nothing=True,
    ),
    Scenario(
        "media-api-down",
        f"media-api gives no answer to batch-check, nor on its health route, for {LONG_TICKS} min",
        _media_api_down,
        told=(f"{CHECK}-systemic-failures", f"{CHECK}-errors"),
        charges_nothing=True,
    ),
    Scenario(
        "lease-table-missing",
        "thrall's lease table (thrallCheckpointTable) does not exist",
        _lease_table(lambda: client_error("ResourceNotFoundException", 400, "Scan")),
        told=(f"{INDEX} CheckpointsUnread",),
        charges_nothing=True,
    ),
    Scenario(
        "lease-table-denied",
        "batch-index may not read thrall's lease table (AccessDenied)",
        _lease_table(lambda: client_error("AccessDeniedException", 400, "Scan")),
        told=(f"{INDEX} CheckpointsUnread",),
        charges_nothing=True,
    ),
    Scenario(
        "lease-table-throttled",
        "every read of thrall's lease table is throttled (after botocore's retries)",
        _lease_table(lambda: client_error("ProvisionedThroughputExceededException", 400, "Scan")),
        told=(f"{INDEX} CheckpointsUnread",),
        charges_nothing=True,
    ),
    Scenario(
        "lease-table-malformed",
        "thrall's lease table holds an item the adapter does not understand",
        _lease_table(
            lambda: ValueError(
                "lease table thrall-TEST, lease 'shardId-0': checkpoint 'x' is neither a "
                "sequence number nor a sentinel"
            )
        ),
        told=(f"{INDEX} CheckpointsUnread",),
        charges_nothing=True,
    ),
    Scenario(
        "cloudwatch-unreadable",
        f"CloudWatch refuses batch-index's reads of the iterator age for {WHILE_TICKS} min",
        _cloudwatch_unreadable,
        told=(f"{INDEX} IteratorAgeUnread",),
        charges_nothing=True,
    ),
    Scenario(
        "kinesis-refused",
        "the stream refuses whole calls (AccessDenied) until the operator fixes the role",
        _kinesis_refused,
        told=(f"{INDEX}-kinesis-refused", f"{INDEX}-errors"),
    ),
    Scenario(
        "kinesis-throughput",
        f"the stream rejects every record (ProvisionedThroughputExceeded) for {WHILE_TICKS} min",
        _kinesis_throughput,
        told=(f"{INDEX} OverloadAnswers", f"{INDEX} InfraReleased"),
    ),
    Scenario(
        "dynamodb-transient",
        "state writes after Kinesis accepted fail half the time (throttles), "
        f"for {WHILE_TICKS} min",
        _dynamodb_transient,
    ),
    Scenario(
        "dynamodb-outage",
        f"state writes after Kinesis accepted fail {OUTAGE_WRITES} times in a row "
        "(longer than the worker's write retries)",
        _dynamodb_outage,
        told=(f"{INDEX}-errors", f"{INDEX}-expired-claims"),
    ),
    Scenario(
        "worker-dies-mid-batch",
        "the first batch-index invocation dies at its 40th projection",
        _dies_mid_batch,
        told=(f"{INDEX}-errors", f"{INDEX}-expired-claims"),
    ),
    Scenario(
        "worker-dies-after-accept",
        "the first batch-index invocation dies just after the stream accepted its 2nd call",
        _dies_after_accept,
        told=(f"{INDEX}-errors", f"{INDEX}-expired-claims"),
    ),
    Scenario(
        "overlapping-invocations",
        "two invocations of each worker run at once, every tick",
        _overlapping,
        overlap=2,
    ),
    Scenario(
        "pause-resume",
        f"the operator pauses at the 60th projection, resumes {WHILE_TICKS + 1} ticks later",
        _pause_resume,
        told=(f"{INDEX} Paused",),
    ),
    Scenario(
        "media-api-revoked-key",
        f"media-api refuses batch-check's key (401) until the operator puts a valid one, "
        f"{WHILE_TICKS} min later",
        _media_api_revoked,
        told=(f"{CHECK}-errors",),
    ),
    Scenario(
        "upload-twice",
        "upload-ids of the same file (+20 new ids) while batch-index runs",
        _upload_twice,
        extra_ids=20,
    ),
    Scenario(
        "reset-from-1",
        "reset --from 1 --to 0 while batch-index holds images",
        _reset_from_1,
        told=("exit 2",),
    ),
]


def run(scenario: Scenario, ids: int) -> tuple[World, PassReport]:
    """One scenario's pass over `ids` images."""
    world = World(ids, overlap=scenario.overlap)
    scenario.inject(world)
    return world, world.run_pass()


def problems(scenario: Scenario, world: World, report: PassReport) -> list[str]:
    """What went wrong in a pass, beyond what the scenario allows; empty when nothing did."""
    found = []
    if not report.finished:
        found.append(f"the pass did not finish in {report.ticks} ticks")
    if report.lost:
        found.append(f"{len(report.lost)} image(s) lost: {report.lost[:3]}")
    if report.mismatched:
        found.append(f"{len(report.mismatched)} record(s) carry another image")
    # Published twice is allowed only where a stream accepted the record and its invocation
    # failed before recording it.
    doubles = report.undocumented_doubles
    if doubles:
        found.append(f"{len(doubles)} image(s) published twice: {doubles[:3]}")
    expected = scenario.expect(world)
    for state, ids in expected.items():
        wrong = sorted(i for i in ids if world.store.get(i).state != state)
        if wrong:
            found.append(f"{len(wrong)} image(s) not in {state}: {wrong[:3]}")
    others = set(world.store_ids()) - set().union(*expected.values())
    unverified = sorted(i for i in others if world.store.get(i).state != S.VERIFIED)
    if unverified:
        states = sorted({int(world.store.get(i).state) for i in unverified})
        found.append(f"{len(unverified)} image(s) not verified (in {states}): {unverified[:3]}")
    if scenario.charges_nothing and report.attempts_charged:
        charged = sorted(i for i in world.store_ids() if world.store.get(i).attempts)
        found.append(f"{len(charged)} image(s) charged for the system's fault: {charged[:3]}")
    missing = [signal for signal in scenario.told if signal not in signals(world, report)]
    if missing:
        found.append(f"the operator was not told: {missing}")
    return found


def signals(world: World, report: PassReport) -> set[str]:
    """Everything that tells the operator: alarms, metrics, the commands' exit codes."""
    return {*report.alarms, *report.metrics, *(f"exit {code}" for code in world.exit_codes)}
