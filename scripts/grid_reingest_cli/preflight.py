"""What `start` and `run` tell the operator at once, before a worker is switched on.

Each is a warning, never a failure: the pass can go on, but not as the operator
may think (paused, or paced on a late signal).
"""

from __future__ import annotations

import argparse

from grid_reingest import names, settings
from grid_reingest.adapters.thrall_checkpoints import lease_table_problem
from grid_reingest.domain.control import Knobs
from grid_reingest_cli import clients
from grid_reingest_cli.stack import function_environment

CHECKPOINTS_ALARM = f"{names.BATCH_INDEX}-checkpoints-unread"


def paused(knobs: Knobs, stage: str | None) -> str | None:
    """The pause, in words, when the pass is paused."""
    if not knobs.paused:
        return None
    where = f" --stage {stage}" if stage else " (with --stage or --table)"
    return (
        "the pass is paused (`reingest pause`): the workers take no work until "
        f"`reingest resume{where}`"
    )


def lease_table(args: argparse.Namespace) -> str | None:
    """Why the deployed batch-index cannot read thrall's lease table, in words (None: it can,
    or the stage does not name one)."""
    if not getattr(args, "stage", None):
        return None
    table = function_environment(args, names.BATCH_INDEX).get(settings.THRALL_CHECKPOINT_TABLE.name)
    if not table:
        return None
    problem = lease_table_problem(clients.client(args, "dynamodb"), table)
    if problem is None:
        return None
    whose = (
        " (read with this command's credentials; batch-index's role may differ)"
        if problem.startswith("AccessDenied")
        else ""
    )
    return (
        f"thrall's lease table {table} cannot be read: {problem}{whose}. batch-index will "
        "pace on CloudWatch's iterator age, minutes late; the alarm "
        f"grid-reingest-{CHECKPOINTS_ALARM}-{args.stage} goes off while it lasts"
    )
