"""The fault table: each fault over a whole pass, where the images end, what the operator sees.

python -m benchmarks faults [--images N] [--json]

Runs every scenario of devtools/fault_scenarios.py (the real flows and adapters
over in-memory clients and the in-memory store) on N images (default 300) and
writes the table into docs/reliability.md, between its markers; with --json it
prints the rows instead and writes nothing. Exits 1 when a scenario lost an
image, published one twice outside the documented case, left one where the
fault should not, or told the operator nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import machine, table
from devtools.fault_scenarios import SCENARIOS, Scenario, problems, run, signals
from devtools.fault_world import PassReport, World
from grid_reingest import names

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
START, END = "<!-- fault-table -->", "<!-- /fault-table -->"
# Metrics every pass has: left out of "what the operator sees".
ROUTINE = {
    names.CLAIMED,
    names.ENQUEUED,
    names.VERIFIED,
    names.KINESIS_CALLS,
    names.COMPLETED,
    names.state_metric(3),
    names.state_metric(6),
}


def row(scenario: Scenario, world: World, report: PassReport, seconds: float) -> dict[str, Any]:
    """One scenario's line of the table, as data."""
    doubles = report.double_published
    return {
        "scenario": scenario.name,
        "fault": scenario.fault,
        "images": report.images,
        "states": report.states,
        "published": report.published,
        "records": report.records,
        "doublePublished": len(doubles),
        "doubleAcceptedNotRecorded": len(set(doubles) & report.accepted_unrecorded),
        "lost": len(report.lost),
        "mismatched": len(report.mismatched),
        "attemptsCharged": report.attempts_charged,
        "imagesCharged": sum(
            1 for i in world.store_ids() if (item := world.store.get(i)) and item.attempts
        ),
        "passEnded": report.finished,
        "passMinutes": round(report.seconds / 60, 1),
        "alarms": report.alarms,
        "errors": report.errors,
        "metrics": {k: v for k, v in report.metrics.items() if k.split(" ", 1)[-1] not in ROUTINE},
        "exitCodes": list(world.exit_codes),
        "ruleSwitches": {
            names.BATCH_INDEX: world.index_rule.switches,
            names.BATCH_CHECK: world.check_rule.switches,
        },
        "operator": report.operator,
        "told": [s for s in scenario.told if s in signals(world, report)],
        "ticks": report.ticks,
        "problems": problems(scenario, world, report),
        "seconds": round(seconds, 2),
    }


def _states(states: dict[str, int] | dict[int, int]) -> str:
    return ", ".join(f"{n}×{s}" for s, n in sorted(states.items(), key=lambda kv: int(kv[0])))


def _sees(r: dict[str, Any]) -> str:
    parts = []
    if r["alarms"]:
        parts.append("alarms " + ", ".join(f"`{a}`" for a in r["alarms"]))
    if r["errors"]:
        parts.append(
            "failed invocations " + ", ".join(f"{s} {n}" for s, n in sorted(r["errors"].items()))
        )
    if r["metrics"]:
        parts.append(
            "metrics "
            + ", ".join(f"{k} {v:g}" for k, v in r["metrics"].items() if "Paused" not in k)
        )
    if any("Paused" in k for k in r["metrics"]):
        parts.append("`Paused` 1 while paused")
    parts += [f"exit {code}" for code in r["exitCodes"]]
    off = [s for s, switches in r["ruleSwitches"].items() if switches.count("off") > 1]
    if off:
        parts.append("rule switched off by the worker: " + ", ".join(off))
    return "; ".join(parts) or "—"


def markdown(rows: list[dict[str, Any]], images: int, seconds: float) -> str:
    """The table and its caption, as docs/reliability.md holds them."""
    headers = [
        "fault",
        "final states (count×state)",
        "images charged (attempts)",
        "pass ended (minutes)",
        "operator told (how)",
        "published: images / records",
        "published twice (accepted, not recorded)",
        "lost",
        "ok",
    ]
    lines = [
        [
            f"**{r['scenario']}**: {r['fault']}",
            _states(r["states"]),
            f"{r['imagesCharged']} ({r['attemptsCharged']})",
            f"{'yes' if r['passEnded'] else '**no**'}, {r['passMinutes']:g}",
            _sees(r),
            f"{r['published']} / {r['records']}",
            f"{r['doublePublished']} ({r['doubleAcceptedNotRecorded']})",
            r["lost"],
            "yes" if not r["problems"] else "**no**: " + "; ".join(r["problems"]),
        ]
        for r in rows
    ]
    return (
        f"{images} images a scenario; {len(rows)} scenarios in {seconds:.0f} s "
        f"({machine()}). `python -m benchmarks faults` writes this table.\n\n"
        + table(headers, lines)
    )


def write(text: str) -> None:
    """Replace the table between the markers of docs/reliability.md."""
    doc = DOC.read_text()
    pattern = re.compile(rf"{re.escape(START)}.*?{re.escape(END)}", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC}: no {START} ... {END} markers to write the table between")
    DOC.write_text(pattern.sub(lambda _: f"{START}\n{text.strip()}\n{END}", doc))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks faults", description=__doc__)
    parser.add_argument("--images", type=int, default=300, help="images a scenario (300)")
    parser.add_argument("--json", action="store_true", help="print the rows; write nothing")
    args = parser.parse_args(argv)
    rows = []
    started = time.perf_counter()
    for scenario in SCENARIOS:
        t0 = time.perf_counter()
        world, report = run(scenario, args.images)
        rows.append(row(scenario, world, report, time.perf_counter() - t0))
        if not args.json:
            print(f"{scenario.name:<26} {rows[-1]['seconds']:>6.2f} s  {_states(report.states)}")
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"images": args.images, "seconds": round(seconds, 2), "rows": rows}))
    else:
        write(markdown(rows, args.images, seconds))
        print(f"{len(rows)} scenarios in {seconds:.1f} s; table written to {DOC}")
    if any(r["problems"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
