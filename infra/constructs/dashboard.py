"""The CloudWatch dashboard an operator watches a pass on: the flow of each worker, what
held it back, the pace, image-projection, the states, and each alarm's status."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from infra.config import StageConfig
from infra.constructs.functions import Worker
from infra.constructs.stage_metrics import FLOW, PERIOD, SAFETY, StageMetrics

_WIDTH = 24  # a dashboard row
_HEIGHT = 6
# Claims that went back or finished short, and why.
_CONTROL = {
    names.BATCH_INDEX: (
        names.BACKPRESSURE_SKIPS,
        names.SYSTEMIC_FAILURES,
        names.RELEASED,
        names.RECLAIMED,
        names.COMPLETED,
    ),
    names.BATCH_CHECK: (
        names.SYSTEMIC_FAILURES,
        names.RELEASED,
        names.RECLAIMED,
        names.COMPLETED,
    ),
}
# image-projection's metrics that are not counts: graphed by percentile.
_PROJECTION_MEASURES = (names.PROJECTION_TIME, names.IMAGE_SIZE)
_PACE_EVENTS = (
    names.OVERLOAD,
    names.INFRA_RELEASED,
    names.CHECKPOINTS_UNREAD,
    names.ITERATOR_AGE_UNREAD,
)


class DashboardBuilder:
    """Builds the dashboard `grid-reingest-<STAGE>` in `scope` from the stage's metrics."""

    def __init__(
        self,
        scope: Construct,
        config: StageConfig,
        metrics: StageMetrics,
        workers: Mapping[str, Worker],
        alarms: Mapping[str, cw.Alarm],
    ) -> None:
        self._scope = scope
        self._config = config
        self.metrics = metrics
        self._workers = workers
        self.alarms = alarms

    def build(self) -> cw.Dashboard:
        """The dashboard, with a status widget for each alarm."""
        config = self._config
        index_rule = c.resource_name(names.BATCH_INDEX, config.stage)
        check_rule = c.resource_name(names.BATCH_CHECK, config.stage)
        dashboard = cw.Dashboard(
            self._scope,
            "Dashboard",
            dashboard_name=c.resource_name(None, config.stage),
            default_interval=Duration.hours(3),
        )
        dashboard.add_widgets(
            cw.TextWidget(
                markdown=(
                    f"# grid-reingest {config.stage}\n"
                    f"Start a pass: `aws events enable-rule --name {index_rule}`; check it: "
                    f"`aws events enable-rule --name {check_rule}`. Each rule is a keep-alive "
                    "(every minute); each worker switches its own rule off when it finds "
                    "nothing left to do. How many items are in each state right now: "
                    "`reingest stats`. Metrics: docs/infra.md."
                ),
                width=_WIDTH,
                height=2,
            )
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title=f"Images moved into each state, per {c.METRIC_PERIOD_MINUTES} min",
                left=[
                    self.metrics.moved_into(state, running_total=False) for state in ProgressState
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Images moved into each state since the start of this range",
                left=[
                    self.metrics.moved_into(state, running_total=True) for state in ProgressState
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(*self._per_service(f"images per {c.METRIC_PERIOD_MINUTES} min", FLOW))
        dashboard.add_widgets(*self._pace_widgets())
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Unknown-failure share",
                left=[self.metrics.failure_share(service) for service in FLOW],
                left_annotations=[
                    cw.HorizontalAnnotation(value=config.unknown_failure_alarm_share, label="alarm")
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Back-pressure: thrall's iterator age",
                left=self.metrics.iterator_ages(),
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=config.max_iterator_age_ms, label="batch-index pauses above"
                    )
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(*self._per_service("runs that stopped short", _CONTROL))
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Safety: refused Kinesis calls, lost and expired claims (each alarms)",
                left=[
                    self.metrics.metric(name, service)
                    for service, metric_names in SAFETY.items()
                    for name in metric_names
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Stalled: rule on, nothing moving (1) / held back by thrall (1)",
                left=[
                    *(self.metrics.stalled(service) for service in FLOW),
                    self.metrics.held_back(),
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(*self._projection_widgets())
        functions = [w.function for w in self._workers.values()]
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors (left) and throttles (right)",
                left=[f.metric_errors(period=PERIOD, statistic="Sum") for f in functions],
                right=[f.metric_throttles(period=PERIOD, statistic="Sum") for f in functions],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Lambda duration (max)",
                left=[f.metric_duration(period=PERIOD, statistic="Maximum") for f in functions],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        # By name rather than by reference: the dashboard only needs the alarms'
        # fixed names, not the alarm resources themselves.
        dashboard.add_widgets(
            cw.AlarmStatusWidget(
                alarms=[
                    cw.Alarm.from_alarm_name(self._scope, f"{alarm.node.id}Status", name)
                    for name, alarm in self.alarms.items()
                ],
                title="Alarms",
                width=_WIDTH,
                height=4,
            )
        )
        return dashboard

    def _per_service(
        self, what: str, metrics_by_service: Mapping[str, tuple[str, ...]]
    ) -> list[cw.IWidget]:
        """A graph of `what` for each service, of that service's metrics."""
        return [
            cw.GraphWidget(
                title=f"{service}: {what}",
                left=[self.metrics.metric(name, service) for name in metric_names],
                width=_WIDTH // 2,
                height=_HEIGHT,
            )
            for service, metric_names in metrics_by_service.items()
        ]

    def _pace_widgets(self) -> list[cw.IWidget]:
        workers = tuple(FLOW)
        return [
            cw.GraphWidget(
                title="Pace: images in flight allowed (left), images a minute allowed (right)",
                left=[self.metrics.metric(names.CONTROL_LIMIT, s, "Average") for s in workers],
                right=[self.metrics.metric(names.CONTROL_RATE, s, "Average") for s in workers],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Pace: overload answers and claims given back for them (left), paused "
                "(right)",
                left=[self.metrics.metric(name, s) for name in _PACE_EVENTS for s in workers],
                right=[self.metrics.metric(names.PAUSED, s, "Maximum") for s in workers],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        ]

    def _projection_widgets(self) -> list[cw.IWidget]:
        service = names.IMAGE_PROJECTION
        counts = [n for n in names.PROJECTION_METRICS if n not in _PROJECTION_MEASURES]
        return [
            cw.GraphWidget(
                title=f"image-projection: answers per {c.METRIC_PERIOD_MINUTES} min",
                left=[self.metrics.metric(name, service) for name in counts],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="image-projection: time in ms (left, p50 and max), image size in bytes "
                "(right, max)",
                left=[
                    self.metrics.metric(names.PROJECTION_TIME, service, "p50"),
                    self.metrics.metric(names.PROJECTION_TIME, service, "Maximum"),
                ],
                right=[self.metrics.metric(names.IMAGE_SIZE, service, "Maximum")],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        ]
