"""Each worker's settings, read once from the environment and validated.

This is the one place the variable names are defined: the CDK app imports them
to wire the Lambdas. Every variable documents itself (name, meaning, default,
allowed values); `describe()` prints them all, and a bad environment is
reported in one error that lists every problem.
"""

from grid_reingest.settings.env_vars import *  # noqa: F403 - every variable, by name
from grid_reingest.settings.loading import describe, load, variables
from grid_reingest.settings.var import SettingsError, Var
from grid_reingest.settings.workers import (
    BatchCheckSettings,
    BatchIndexSettings,
    GridSettings,
    ProjectionSettings,
    RepairSettings,
    StateCountsSettings,
    stream_name,
    watched_streams,
)

__all__ = [
    "BatchCheckSettings",
    "BatchIndexSettings",
    "GridSettings",
    "ProjectionSettings",
    "RepairSettings",
    "SettingsError",
    "StateCountsSettings",
    "Var",
    "describe",
    "load",
    "stream_name",
    "variables",
    "watched_streams",
]
