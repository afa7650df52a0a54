"""The pass benchmark's results as Markdown, for docs/benchmarks.md ("Pass simulation")."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.pass_score import median_of
from benchmarks.report import machine, table
from devtools.sim_policies import Deployment

PASS_IMAGES = 40_000_000
POLICIES = ("ours", "seed_best", "today")


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def rows(found: dict[str, dict[str, Any]]) -> list[list[object]]:
    """One row per scenario and policy: medians over the seeds, with the spread of the share."""
    out = []
    for entry in found.values():
        scenario = entry["scenario"]
        for policy in POLICIES:
            runs = entry["runs"][policy]
            if not runs:
                continue
            m = median_of([r["m"] for r in runs])
            shares = [r["m"]["throughput_share"] for r in runs]
            costs = {k: statistics.median(r["cost"][k] for r in runs) for k in runs[0]["cost"]}
            name = policy if policy != "ours" else "**ours**"
            if policy == "seed_best":
                swept = entry.get("sizings") or [runs[0]["share"]]
                name += f" ({runs[0]['share']:.0%} of {max(swept):.0%}–{min(swept):.0%})"
            recovery = m["recovery_minutes"]
            out.append(
                [
                    scenario.name,
                    name,
                    _spread(shares),
                    f"{entry['best_share']:.3f}",
                    f"{statistics.median(r['per_minute'] for r in runs):,.0f}",
                    f"{m['over_threshold_share']:.3f}",
                    f"{m['peak_iterator_age_s']:.0f}",
                    _charged(runs),
                    "-" if recovery is None else f"{recovery:.1f}",
                    f"{m['index_minutes']:.0f} / {m['pass_minutes']:.0f}",
                    f"{costs['index']:.0f} + {costs['projection']:.0f} + {costs['check']:.0f}",
                ]
            )
    return out


def _charged(runs: list[dict[str, Any]]) -> str:
    """The most charged over the seeds, and beside it the most that failed on their own."""
    charged = max(r["m"]["charged_failures"] for r in runs)
    own = max(r["own"] for r in runs)
    return f"{charged} (+{own} own)" if own else f"{charged}"


def report(found: dict[str, dict[str, Any]], took: float, seeds: int, dep: Deployment) -> str:
    """The results as Markdown."""
    headers = [
        "scenario",
        "policy",
        "throughput share: median (min–max)",
        "best share",
        "verified/min",
        "time over threshold",
        "peak age s",
        "charged (most)",
        "recovery min",
        "index / pass min",
        "GB-s / 1,000 images (index + projection + check)",
    ]
    passes = sum(len(runs) for entry in found.values() for runs in entry["runs"].values())
    seed_list = sorted({s for entry in found.values() for s in entry["seeds"]})
    return f"""Measured {machine()}; {passes} simulated passes took {took:.0f} s; seeds \
{", ".join(map(str, seed_list))} ({seeds} a scenario; seed_best's sizing swept on the first).

{table(headers, rows(found))}

- Policies: **ours** is the deployed batch-index and batch-check as PROD's cdk.json
  deploys them: a keep-alive a minute each, up to {dep.index_reserved} batch-index
  invocations sharing the pass's ceiling of {dep.in_flight} projections in flight
  (`gridConcurrency`, `imageProjection.reservedConcurrency`), batch-check beside it
  from the start (ceiling {dep.check_in_flight}), thrall's checkpoints read.
  **seed_best** is the seed's one-batch policy at the best batch size (in brackets:
  its share of the nominal capacity, and the sizings swept) of 50–100% in steps of
  5%, swept on the first seed from the top down until the share has fallen on two
  successive sizings;
  **today** the one-batch design with PROD's earlier values (500 ids every 5
  minutes, 32 at once, two invocations). Both check after indexing has finished.
- **Throughput share**: images verified a minute over the whole pass (until the
  last image is verified or failed, batch-check included) ÷ min(Grid, thrall,
  stream) nominal capacity; median over the seeds, and the lowest and highest.
  **Best share**: what a pass publishing at the capacity in force all along, each
  image verified as it goes, would reach: 1 where capacity is steady, less where
  it changes (no policy can beat it).
  **Time over threshold**: share of the index part (thrall's pauses left out) with
  the true iterator age above {dep.threshold_ms / 1000:.0f} s. **Charged**: images
  charged an attempt for anything but their own failure, or judged missing (state
  7) though thrall had not reached them yet (every image reaches media-api here),
  the most over the seeds. The only images that fail on their own here are those
  whose record no second of its shard can take beside the other producers' records
  (a record near 1 MiB): they end at 8 and count apart ("+N own"). **Recovery**: minutes
  after the last disturbance until a minute's published images reach 80% of
  nominal.
- **GB-seconds**: invocation wall time × memory per 1,000 images (batch-index
  1,024 MB, image-projection 512 MB per projection invoked, batch-check 256 MB);
  the seed projects in-process (its projections are in batch-index's time).
- The scenarios, how each was chosen (`tuning-*` tuned on, `holdout-*` never) and
  the targets: docs/throughput.md.

Re-run: `python -m benchmarks pass --seeds {seeds}`; one file:
`python -m benchmarks pass --scenario benchmarks/scenarios/NAME.json --seeds 5 --json`.
"""
