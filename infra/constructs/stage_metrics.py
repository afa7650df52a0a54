"""The numbers one stage's dashboard and alarms are built from: the workers' own
metrics, the schedules', thrall's stream's, and the expressions over them."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from infra.config import StageConfig

PERIOD = Duration.minutes(c.METRIC_PERIOD_MINUTES)
# Each scheduled worker's flow, in the order graphed.
FLOW = {
    names.BATCH_INDEX: (names.CLAIMED, names.ENQUEUED, names.FAILED),
    names.BATCH_CHECK: (names.CLAIMED, names.VERIFIED, names.FAILED),
}
# What should never happen in a healthy pass; each has an alarm.
SAFETY = {
    names.BATCH_INDEX: (
        names.KINESIS_REFUSED,
        names.LOST_CLAIMS,
        names.EXPIRED_CLAIMS,
        names.SYSTEMIC_FAILURES,
    ),
    names.BATCH_CHECK: (names.LOST_CLAIMS, names.EXPIRED_CLAIMS, names.SYSTEMIC_FAILURES),
}


def metric_id(service: str) -> str:
    """A service's name as a metric-math id allows it."""
    return service.replace("-", "_")


class StageMetrics:
    """The metrics of one stage."""

    def __init__(self, config: StageConfig) -> None:
        self.config = config

    def metric(self, name: str, service: str, statistic: str = "Sum") -> cw.Metric:
        """One of a worker's own metrics in this stage."""
        return cw.Metric(
            namespace=names.NAMESPACE,
            metric_name=name,
            dimensions_map={
                names.SERVICE_DIMENSION: service,
                names.STAGE_DIMENSION: self.config.stage,
            },
            statistic=statistic,
            period=PERIOD,
        )

    def rule_ticks(self, service: str) -> cw.Metric:
        """How often a worker's schedule rule fired."""
        # EventBridge counts the targets it invoked: data only while the rule is on.
        return cw.Metric(
            namespace=c.EVENTS_NAMESPACE,
            metric_name=c.RULE_INVOCATIONS_METRIC,
            dimensions_map={c.RULE_DIMENSION: c.resource_name(service, self.config.stage)},
            statistic="Sum",
            period=PERIOD,
        )

    def iterator_ages(self) -> list[cw.Metric]:
        """The iterator age of each stream that gates batch-index."""
        return [
            cw.Metric(
                namespace=names.KINESIS_NAMESPACE,
                metric_name=names.ITERATOR_AGE_METRIC,
                dimensions_map={names.STREAM_DIMENSION: stream},
                statistic="Maximum",
                period=PERIOD,
            )
            for stream in self.config.watched_streams
        ]

    def failure_share(self, service: str) -> cw.MathExpression:
        """A worker's unknown failures per claimed image."""
        # Ids are per service: both workers' shares share a graph.
        suffix = metric_id(service)
        failed, claimed = f"failed_{suffix}", f"claimed_{suffix}"
        return cw.MathExpression(
            expression=f"IF({claimed} > 0, {failed} / {claimed}, 0)",
            using_metrics={
                failed: self.metric(names.FAILED, service),
                claimed: self.metric(names.CLAIMED, service),
            },
            label=f"{service}: unknown failures / claimed",
            period=PERIOD,
        )

    def stalled(self, service: str) -> cw.MathExpression:
        """1 in a period where a worker's rule was on and nothing moved."""
        # 1 in a period where the rule ticked but nothing was claimed, the pass
        # did not finish and the operator had not paused it. FILL: a worker that
        # emitted nothing at all moved nothing.
        suffix = metric_id(service)
        ticks, claimed = f"ticks_{suffix}", f"claimed_{suffix}"
        finished, paused = f"finished_{suffix}", f"paused_{suffix}"
        return cw.MathExpression(
            expression=(
                f"IF(FILL({ticks}, 0) > 0 AND FILL({claimed}, 0) + FILL({finished}, 0) "
                f"+ FILL({paused}, 0) == 0, 1, 0)"
            ),
            using_metrics={
                ticks: self.rule_ticks(service),
                claimed: self.metric(names.CLAIMED, service),
                finished: self.metric(names.COMPLETED, service),
                paused: self.metric(names.PAUSED, service, "Maximum"),
            },
            label=f"{service}: rule on, nothing moving",
            period=PERIOD,
        )

    def held_back(self) -> cw.MathExpression:
        """1 in a period where thrall's iterator age held batch-index back."""
        # 1 in a period where batch-index's rule ticked while the highest
        # iterator age of the watched streams was above the threshold: every
        # run of that period took no work.
        ages = {f"age_{i}": metric for i, metric in enumerate(self.iterator_ages())}
        ticks = "ticks_batch_index"
        highest = next(iter(ages)) if len(ages) == 1 else f"MAX([{', '.join(ages)}])"
        return cw.MathExpression(
            expression=(
                f"IF(FILL({ticks}, 0) > 0 AND {highest} > {self.config.max_iterator_age_ms}, 1, 0)"
            ),
            using_metrics={ticks: self.rule_ticks(names.BATCH_INDEX), **ages},
            label="batch-index: held back by thrall's iterator age",
            period=PERIOD,
        )

    def moved_into(self, state: ProgressState, running_total: bool) -> cw.MathExpression:
        """Images moved into `state`, by every worker together."""
        # Both workers move images into some states (8, or 0 for a retry):
        # add up every service's count.
        search = (
            f"{{{names.NAMESPACE},{names.SERVICE_DIMENSION},{names.STAGE_DIMENSION}}} "
            f'{names.STAGE_DIMENSION}="{self.config.stage}" '
            f'MetricName="{names.state_metric(int(state))}"'
        )
        expression = f"SUM(SEARCH('{search}', 'Sum', {int(PERIOD.to_seconds())}))"
        if running_total:
            expression = f"RUNNING_SUM({expression})"
        return cw.MathExpression(
            expression=expression,
            using_metrics={},
            label=f"{int(state)} {state.label}",
            period=PERIOD,
        )
