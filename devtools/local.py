"""`make local`: a stage LOCAL on this machine that stays up, to try `reingest` against.

moto's server (emulated AWS) and the simulated Grid on 127.0.0.1, and a stage
LOCAL made on them as `grid-reingest-LOCAL` would be deployed
(devtools/local_stage.py: the stack's outputs, the state table and its stream,
both schedule rules, both functions, thrall's stream). Its schedule runs here:
batch-index and batch-check whenever their rule is on, state-counts on the
table's stream, and a thrall stand-in that indexes what reaches its stream. A
file of ids, a --mix share of them planted to fail the way real images fail
(devtools/planted.py), is left in .local/ids.txt.

It prints the environment lines that point `reingest` at it, and stays up
until Ctrl-C. Run again while it is up, it says so and prints the same lines
(it never starts a second one).

    make local                       terminal 1; Ctrl-C stops it
    eval "$(make -s local-env)"      terminal 2: the environment lines, then
    reingest run .local/ids.txt --stage LOCAL
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from devtools.grid_server import GridSim
from devtools.local_lambda import environment
from devtools.local_stage import local_stage
from devtools.planted import KINDS, image_ids, plant, planted_count
from devtools.servers import ROOT, aws_environment, free_port, moto_server
from grid_reingest.adapters.dynamodb.schema import create_table
from grid_reingest.adapters.dynamodb.tables import OperatorTable

STAGE = "LOCAL"
TABLE = f"grid-reingest-{STAGE}"
STREAM = f"media-service-{STAGE}-ThrallLowPriorityMessageStream"
# Where its files go: the ids, and what says it is up (stage.json).
HOME = ROOT / ".local"
# The emulator's port when it is free: the environment lines stay the same from one
# `make local` to the next.
DEFAULT_PORT = 4599
# The workers as deployed, with a decision every few seconds so the pace moves in view.
FUNCTION_ENV = {"PACE_REFRESH_SECONDS": "5", "MAX_IN_FLIGHT": "32", "GRID_CONCURRENCY": "32"}
# image-loader's re-projection is the slow call, as in the Grid.
LATENCY = {"image-loader": 0.3}
DEFAULT_LATENCY = 0.02
# The handlers' log lines and metrics stay out of the terminal: `reingest watch` tells.
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
# moto's server is one process: more ids make a pass long; more than half failing is not a pass.
MAX_IDS = 5000
MAX_MIX = 0.5
# How long Ctrl-C waits for an invocation to end before leaving it.
STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class Running:
    """A local stage that is up: its process and where it answers."""

    pid: int
    endpoint: str


def find_running(home: Path = HOME) -> Running | None:
    """The local stage that is up, if one is (its process alive and answering)."""
    try:
        state = json.loads((home / "stage.json").read_text())
        os.kill(state["pid"], 0)
        requests.get(f"{state['endpoint']}/moto-api/", timeout=2).raise_for_status()
    except (OSError, ValueError, KeyError, requests.RequestException):
        return None
    return Running(state["pid"], state["endpoint"])


def env_lines(endpoint: str) -> list[str]:
    """The shell lines that point `reingest` (and aws-cli) at the local stage."""
    variables = {**aws_environment(endpoint)}
    lines = [f"export {name}={value}" for name, value in variables.items()]
    lines.append(f'export PATH="{ROOT / ".venv" / "bin"}:$PATH"')
    return lines


def commands(home: Path = HOME) -> list[str]:
    """What to try against it."""
    ids = home / "ids.txt"
    shown = ids.relative_to(Path.cwd()) if ids.is_relative_to(Path.cwd()) else ids
    return [
        f"reingest run {shown} --stage {STAGE}   # a whole pass, watched",
        f"reingest stats --stage {STAGE}                       # items per state",
        f"reingest failures --stage {STAGE}                    # what failed, by reason",
    ]


def _port(wanted: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def _say(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def _stop_on(signum: int, frame: object) -> None:
    # Ctrl-C, kill or a closed terminal: the emulator and the Grid go with it.
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    """Make the stage and keep it up until Ctrl-C."""
    home = args.home
    home.mkdir(parents=True, exist_ok=True)
    state_file = home / "stage.json"
    # Ctrl-C too: a process started in the background may have inherited SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on)
    port = _port(args.port)
    with (
        moto_server(port) as endpoint,
        GridSim(latency=LATENCY, default_latency=DEFAULT_LATENCY) as grid,
        environment({**aws_environment(endpoint), **QUIET}),
    ):
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        create_table(dynamodb, TABLE)
        table = OperatorTable(TABLE, dynamodb)
        _, schedule = local_stage(endpoint, table, grid, STAGE, stream=STREAM, **FUNCTION_ENV)
        grid.index_all = False  # media-api has an image once thrall indexed it
        ids = image_ids(args.ids)
        planted = plant(grid, ids, args.mix)
        (home / "ids.txt").write_text("".join(f"{i}\n" for i in ids))
        state_file.write_text(json.dumps({"pid": os.getpid(), "endpoint": endpoint}))
        _say(
            [
                f"stage {STAGE} is up: emulated AWS at {endpoint}, simulated Grid at {grid.url}",
                f"{len(ids)} ids in {home / 'ids.txt'}; {len(planted)} planted to fail "
                f"({', '.join(k.key for k in KINDS)})",
                "",
                "in another terminal, point reingest at it:",
                *(f"  {line}" for line in env_lines(endpoint)),
                '  (or: eval "$(make -s local-env)")',
                "then, for example:",
                *(f"  {line}" for line in commands(home)),
                "",
                "the workers run here on their schedules; Ctrl-C stops everything",
            ]
        )
        try:
            with schedule.running(every=1.0, wait=STOP_WAIT_S):
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            print(f"\nstopping stage {STAGE}", file=sys.stderr)
        finally:
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--env", action="store_true", help="print the environment lines of the stage that is up"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the emulator's port when it is free (default {DEFAULT_PORT}; else any)",
    )
    parser.add_argument(
        "--ids", type=int, default=200, help="ids in HOME/ids.txt (default 200, at most 5,000)"
    )
    parser.add_argument(
        "--mix",
        type=float,
        default=0.05,
        help="share of them planted to fail (default 0.05; 0 for none, at most 0.5)",
    )
    parser.add_argument(
        "--home", type=Path, default=HOME, help="where its files go (default .local/)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.ids <= MAX_IDS:
        parser.error(f"--ids {args.ids}: between 1 and {MAX_IDS:,}")
    if not 0 <= args.mix <= MAX_MIX or (args.mix and planted_count(args.ids, args.mix) > args.ids):
        parser.error(f"--mix {args.mix:g}: a share between 0 and {MAX_MIX} that --ids can hold")
    running = find_running(args.home)
    if args.env:
        if running is None:
            print("no local stage is up: run `make local` first", file=sys.stderr)
            return 1
        _say(env_lines(running.endpoint))
        return 0
    if running is not None:
        _say(
            [
                f"stage {STAGE} is up already (process {running.pid}, emulated AWS at "
                f"{running.endpoint}): use it, or Ctrl-C it in its terminal first",
                *(f"  {line}" for line in env_lines(running.endpoint)),
                *(f"  {line}" for line in commands(args.home)),
            ]
        )
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
