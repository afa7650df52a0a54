"""A whole reingestion pass on this machine, as an operator sees it: `reingest run`.

moto's server stands in for AWS and the simulated Grid for the Grid's services,
both on 127.0.0.1 (free ports), stopped at the end. A local stage DEMO is made
on the emulator (devtools/local_stage.py: the stack's outputs, its table, rules
and functions); its schedule runs the real batch-index and batch-check handlers
in this process whenever their rule is on, and a thrall stand-in indexes what
reaches its stream. Then, with the operator's own commands:

1. `reingest run ids.txt --stage DEMO`: upload, batch-index until it switches
   itself off, batch-check likewise, report; its live progress is `watch`'s
   (the controller's limit moves: it decides every second here);
2. `reingest failures --stage DEMO`: what failed, grouped by reason, each group
   matched with the failure planted for it;
3. the next step, `reingest reset --stage DEMO --reason ID` for the group worth
   retrying, run with --dry-run;
4. the files an operator would open, in a folder under .demo/.

Planted (a --mix share of the ids, at least one of each): ids image-loader does
not have (state 2), corrupt originals (4), an image too big for a Kinesis record
(9001), ids whose leases service fails every time (8, once their attempts are
spent), ids whose usages service fails once (retried, then verified). The demo
exits 1 if the pass did not end as planted.

    make demo                     (or: .venv/bin/python scripts/demo.py --ids 300 --mix 0.05)
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import io
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.grid_server import GridSim  # noqa: E402
from devtools.local_lambda import environment  # noqa: E402
from devtools.local_stage import local_stage  # noqa: E402
from devtools.planted import ATTEMPTS, KINDS, Kind, image_ids, plant, planted_count  # noqa: E402
from devtools.servers import aws_environment, moto_server  # noqa: E402
from grid_reingest.domain.states import ProgressState as S  # noqa: E402

STAGE = "DEMO"
TABLE = f"grid-reingest-{STAGE}"
STREAM = f"media-service-thrall-low-priority-{STAGE}"
DEMO_DIR = ROOT / ".demo"
MAX_IDS = 5000  # beyond this, moto's server (one Python process) makes the pass long
MAX_MIX = 0.5
# The handlers' own log lines and metrics would drown the story: watch tells it.
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
# What the local functions get besides the defaults: a decision a second, so the
# controller's limit moves in view; a ceiling it climbs to in about fifteen of them.
FUNCTION_ENV = {"PACE_REFRESH_SECONDS": "1", "MAX_IN_FLIGHT": "32", "GRID_CONCURRENCY": "32"}
# image-loader's re-projection is the slow call, as in the Grid.
LATENCY = {"image-loader": 0.3}
DEFAULT_LATENCY = 0.02
WATCH_INTERVAL = "2"


RETRYABLE = "leases-down"
# The states `reingest failures` groups by default.
FAILURE_STATES = (S.KNOWN_ERROR, S.NOT_FOUND_IN_MEDIA_API, S.UNKNOWN_ERROR, S.TOO_BIG)


class Failed(Exception):
    """The pass did not end as planted."""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


# -- options -----------------------------------------------------------------------


def ids_option(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_IDS:
        raise argparse.ArgumentTypeError(
            f"{value}: must be between 1 and {MAX_IDS:,} (moto's server, one process, makes "
            "larger passes long; benchmarks/ measures throughput)"
        )
    return value


def mix_option(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: give the share of ids to break, e.g. 0.05"
        ) from None
    if not 0 <= value <= MAX_MIX:
        raise argparse.ArgumentTypeError(
            f"{value:g}: a share between 0 and {MAX_MIX} (e.g. 0.05 for 5%); more than half "
            "failing would show batch-index's breaker, not a pass"
        )
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 the pass went as planted; 1 it did not (each difference is "
        "listed); 2 bad options",
    )
    parser.add_argument(
        "--ids", type=ids_option, default=300, metavar="N", help="how many images (default 300)"
    )
    parser.add_argument(
        "--mix",
        type=mix_option,
        metavar="SHARE",
        default=0.05,
        help="share of the ids given a planted failure, e.g. 0.05 (default); at least one of "
        f"each of the {len(KINDS)} kinds unless 0",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the files the demo leaves (default .demo/pass-<UTC time>)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=600,
        help="seconds the pass may take before the demo gives up (default 600)",
    )
    args = parser.parse_args(argv)
    if args.mix and planted_count(args.ids, args.mix) * 2 > args.ids:
        parser.error(
            f"--ids {args.ids} is too few for --mix {args.mix:g}: one of each of the "
            f"{len(KINDS)} kinds of failure needs at least {2 * len(KINDS)} ids"
        )
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    args.out = args.out or DEMO_DIR / f"pass-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder")
    if args.out.is_dir() and any(args.out.iterdir()):
        parser.error(f"--out {args.out}: the folder already holds files; name a new one")
    return args


# -- the story ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"demo.py: cannot create --out {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    started = time.monotonic()
    with (
        moto_server() as endpoint,
        GridSim(latency=LATENCY, default_latency=DEFAULT_LATENCY) as grid,
        environment({**aws_environment(endpoint), **QUIET}),
    ):
        try:
            problems = demo(args, endpoint, grid)
        except Failed as error:
            problems = [str(error)]
        except KeyboardInterrupt:
            print("\ndemo.py: interrupted; stopping the servers", file=sys.stderr)
            return 130
    say(f"done in {time.monotonic() - started:.0f} s; servers stopped")
    if problems:
        print("the pass did NOT go as planted:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("the pass went as planted")
    return 0


def demo(args: argparse.Namespace, endpoint: str, grid: GridSim) -> list[str]:
    """The pass and what the operator does after it; the differences from the plan."""
    # Imported here: the CLI and the handlers read Powertools' variables at import.
    import boto3  # noqa: PLC0415

    from grid_reingest.adapters.dynamodb.schema import create_table  # noqa: PLC0415
    from grid_reingest.adapters.dynamodb.tables import OperatorTable  # noqa: PLC0415
    from grid_reingest_cli.main import main as reingest  # noqa: PLC0415

    say(f"emulated AWS at {endpoint}, simulated Grid at {grid.url}")
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    create_table(dynamodb, TABLE)
    table = OperatorTable(TABLE, dynamodb)
    _, schedule = local_stage(endpoint, table, grid, STAGE, stream=STREAM, **FUNCTION_ENV)
    grid.index_all = False  # media-api has an image only once thrall indexed it

    ids = image_ids(args.ids)
    planted = plant(grid, ids, args.mix)
    ids_file = args.out / "ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in ids))
    explain_plan(ids, planted)

    say(f"reingest run {ids_file.name} --stage {STAGE} --interval {WATCH_INTERVAL}")
    code = run_pass(reingest, ids_file, schedule, args.timeout)
    problems = list(schedule.errors)
    expected_code = 3 if any(k.state != S.VERIFIED for k in planted.values()) else 0
    if code == 130:
        raise Failed(f"the pass did not finish within --timeout {args.timeout:g} s")
    if code != expected_code:
        problems.append(f"reingest run exited {code}, expected {expected_code}")

    problems += triage(reingest, planted, args.out)
    statuses = args.out / "statuses.tsv"
    say(f"reingest scan-statuses --stage {STAGE} --with-errors {statuses.name}")
    if reingest(["scan-statuses", "--stage", STAGE, "--with-errors", str(statuses)]):
        raise Failed("reingest scan-statuses failed")
    problems += compare(ids, planted, read_statuses(statuses))

    say(f"files to open, in {args.out}")
    for name, what in (
        ("ids.txt", "the ids uploaded"),
        ("statuses.tsv", "every image's id, state, attempts and last error, tab-separated"),
        ("failures.json", "the failure groups, as `reingest failures --json` prints them"),
    ):
        print(f"  {args.out / name}  ({what})")
    print(f"  ({len(schedule.invocations)} invocations: {summary_of(schedule.invocations)})")
    return problems


def triage(reingest, planted: dict[str, Kind], out: Path) -> list[str]:
    """What an operator does after the pass: the failures by reason (each matched with what
    was planted), then the next step for the group worth retrying; the differences."""
    say(f"reingest failures --stage {STAGE}")
    if reingest(["failures", "--stage", STAGE]):
        raise Failed("reingest failures failed")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = reingest(["failures", "--stage", STAGE, "--json"])
    if code:
        raise Failed("reingest failures --json failed")
    (out / "failures.json").write_text(printed.getvalue())
    retry, problems = explain_groups(json.loads(printed.getvalue())["groups"], planted)
    if retry is None:
        return problems
    say("the next step: once the leases service is mended, retry its group")
    command = ["reset", "--stage", STAGE, "--reason", retry]
    print(f"  reingest {' '.join(command)}")
    print(f"  reingest run ids.txt --stage {STAGE}   (runs them again)")
    print("  the first, here with --dry-run (it changes nothing):")
    if reingest([*command, "--dry-run"]):
        problems.append("reingest reset --dry-run failed")
    return problems


def explain_plan(ids: list[str], planted: dict[str, Kind]) -> None:
    say(f"{len(ids)} ids; {len(planted)} with a planted failure")
    for kind in KINDS:
        n = sum(1 for k in planted.values() if k is kind)
        if n:
            print(f"  {n:>4} {kind.what:<48} -> {int(kind.state)}: {kind.why}")
    print(f"  {len(ids) - len(planted):>4} {'others':<48} -> 6 (verified)")


def run_pass(reingest, ids_file: Path, schedule, timeout: float) -> int:
    """`reingest run` with the schedule ticking beside it; Ctrl-C'ed (exit 130) at `timeout`."""
    watchdog = threading.Timer(timeout, _thread.interrupt_main)
    watchdog.daemon = True
    with schedule.running():
        watchdog.start()
        try:
            return reingest(["run", str(ids_file), "--stage", STAGE, "--interval", WATCH_INTERVAL])
        finally:
            watchdog.cancel()


def read_statuses(path: Path) -> dict[str, tuple[int, int]]:
    """scan-statuses --with-errors' file: id -> (state, attempts)."""
    rows = {}
    for line in path.read_text().splitlines():
        image_id, state, attempts, _ = line.split("\t", 3)
        rows[image_id] = (int(state), int(attempts))
    return rows


def compare(
    ids: list[str], planted: dict[str, Kind], rows: dict[str, tuple[int, int]]
) -> list[str]:
    """Each image's state against the plan; a line per difference."""
    problems = []
    say("what was planted, and where it ended")
    for kind in (*KINDS, None):
        members = [i for i in ids if planted.get(i) is kind]
        if not members:
            continue
        state = S.VERIFIED if kind is None else kind.state
        there = sum(1 for i in members if rows.get(i, (None,))[0] == state)
        what = "others" if kind is None else kind.what
        print(f"  {what:<48} {there:>4} of {len(members):<4} at {int(state)} ({state.label})")
        if there != len(members):
            wrong = sorted({rows.get(i, (-1,))[0] for i in members} - {state})
            problems.append(
                f"{len(members) - there} of the {what} ended at {wrong}, not {int(state)}"
            )
    verified = sum(1 for state, _ in rows.values() if state == S.VERIFIED)
    expected = sum(1 for i in ids if planted.get(i) in (None, *_verified_kinds()))
    print(f"  verified: {verified} (planned {expected})")
    if verified != expected:
        problems.append(f"{verified} images verified, planned {expected}")
    spent = [i for i, k in planted.items() if k.key == RETRYABLE and rows[i][1] != ATTEMPTS]
    if spent:
        problems.append(f"{len(spent)} of the {RETRYABLE} ids did not use {ATTEMPTS} attempts")
    return problems


def _verified_kinds() -> tuple[Kind, ...]:
    return tuple(k for k in KINDS if k.state == S.VERIFIED)


def explain_groups(groups: list[dict], planted: dict[str, Kind]) -> tuple[str | None, list[str]]:
    """Which planted failure each group is; (the id of the group to retry, differences)."""
    problems = []
    retry = None
    if groups:
        print("  which planted failure each group is:")
    for number, group in enumerate(groups, start=1):
        kinds = {planted[i].key if i in planted else "unplanned" for i in group["examples"]}
        kind = next((k for k in KINDS if {k.key} == kinds), None)
        if kind is None:
            problems.append(f"group {number} ({group['reason']}) is no one planted failure")
            continue
        size = sum(1 for k in planted.values() if k is kind)
        print(f"  {number:>4}. {group['id']:<14} {group['count']} {kind.what}: {kind.why}")
        if group["count"] != size or group["states"] != [int(kind.state)]:
            problems.append(
                f"group {number} holds {group['count']} at {group['states']}; "
                f"planted {size} {kind.what} for state {int(kind.state)}"
            )
        if kind.key == RETRYABLE:
            retry = group["id"]
    failing = {
        k.key for k in planted.values() if k.state in (S.KNOWN_ERROR, S.UNKNOWN_ERROR, S.TOO_BIG)
    }
    if len(groups) != len(failing):
        problems.append(f"{len(groups)} failure groups, planted {len(failing)} kinds")
    if not any(k.state == S.NOT_FOUND for k in planted.values()):
        return retry, problems
    print(
        f"  (state 2, not found by image-loader, is not a failure of the pass: "
        f"`reingest failures --stage {STAGE} --state 2` lists those ids)"
    )
    return retry, problems


def summary_of(invocations: list[str]) -> str:
    names = {"index": "batch-index", "check": "batch-check"}
    return ", ".join(f"{names[w]} {invocations.count(w)}" for w in names)


if __name__ == "__main__":
    sys.exit(main())
