"""What `reingest watch` prints of one look: lines for a person, or one JSON object."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import status
from grid_reingest_cli.common import count_lines
from grid_reingest_cli.control import control_json, knobs_line, pace_line
from grid_reingest_cli.stack import WORKERS

if TYPE_CHECKING:
    from grid_reingest_cli.watch import Look, Sources


def render_text(look: Look, src: Sources, previous: Look | None, terminal: bool) -> str:
    """A look as the operator reads it."""
    held = {s: n for s, n in look.counts.items() if n}
    shown_before = None if previous is None else previous.counts
    header, *lines = count_lines(held, src.table.name, shown_before)
    counted = f" (counted by {look.counted.describe(look.at)})" if look.counted else ""
    out = [f"-- {look.at:%Y-%m-%d %H:%M:%S}Z  {header}{counted}", *lines]
    for worker, view in look.workers.items():
        name = WORKERS[worker]
        rule = "" if view.rule is None else f" (rule {'on' if view.rule == 'ENABLED' else 'off'})"
        rate = "—" if view.rate_per_minute is None else f"{view.rate_per_minute:,.0f}/min"
        if view.status == "done":
            out.append(f"{name:<12} done{rule}: {view.reason}")
            continue
        if view.status == "idle":
            why = "" if view.reason == "rule off" else f": {view.reason}"
            out.append(f"{name:<12} idle{rule}{why}; {view.remaining:,} left")
            continue
        progress = f"{status.bar(view.share)} " if terminal else ""
        # A worker whose rule is off while it still holds images is finishing them; its
        # rule is said once.
        why = f" ({view.reason})" if view.reason and view.reason != "rule off" else ""
        if view.reason == "rule off":
            why = f" (finishing the {view.held:,} it holds)"
        out.append(
            f"{name:<12} working{rule}{why}: {progress}{view.done:,} done, "
            f"{view.remaining:,} left, {rate}, ETA {status.duration(view.eta_seconds)}"
        )
    if look.whole is not None:
        whole = look.whole
        rate = "—" if whole.rate_per_minute is None else f"{whole.rate_per_minute:,.0f}/min"
        out.append(
            f"{'whole pass':<12} {whole.done:,} finished, {whole.remaining:,} left, {rate}, "
            f"ETA {status.duration(whole.eta_seconds)} (checking included)"
        )
    was = None if previous is None or previous.control.pace is None else previous.control.pace
    out.append(pace_line(look.control, was).replace("controller:", "controller  ", 1))
    out.append(knobs_line(look.control.knobs).replace("knobs:", "knobs       ", 1))
    out.append("thrall       " + _age_text(look, src))
    return "\n".join(out) + "\n"


def _age_text(look: Look, src: Sources) -> str:
    if not src.streams:
        return "iterator age unknown (name the stream with --stream, or use --stage)"
    if look.iterator_age_s is None:
        return f"no iterator-age data for {', '.join(src.streams)}"
    trend = "" if look.previous_age_s is None else f", a minute before {look.previous_age_s:.0f} s"
    limit = "" if src.threshold_s is None else f" (threshold {src.threshold_s:.0f} s)"
    return f"iterator age {look.iterator_age_s:.0f} s{limit}{trend}"


def render_json(look: Look, src: Sources) -> str:
    """A look as one line of JSON."""
    return json.dumps(
        {
            "at": f"{look.at:%Y-%m-%dT%H:%M:%S}Z",
            "table": src.table.name,
            "total": sum(look.counts.values()),
            "countedBy": look.counted.by if look.counted else None,
            "tallyUpdatedAt": look.counted.at if look.counted else None,
            "states": {
                str(s): {"name": S(s).label, "count": n}
                for s, n in sorted(look.counts.items())
                if n
            },
            "workers": {
                w: {
                    "rule": v.rule,
                    "status": v.status,
                    "reason": v.reason,
                    "done": v.done,
                    "remaining": v.remaining,
                    "held": v.held,
                    "ratePerMinute": v.rate_per_minute,
                    "etaSeconds": v.eta_seconds,
                }
                for w, v in look.workers.items()
            },
            "pass": None
            if look.whole is None
            else {
                "finished": look.whole.done,
                "remaining": look.whole.remaining,
                "ratePerMinute": look.whole.rate_per_minute,
                "etaSeconds": look.whole.eta_seconds,
            },
            **control_json(look.control, history=False),
            "iteratorAge": {
                "streams": list(src.streams),
                "seconds": look.iterator_age_s,
                "previousSeconds": look.previous_age_s,
                "thresholdSeconds": src.threshold_s,
            },
            "done": look.all_done,
        },
        separators=(",", ":"),
    )
