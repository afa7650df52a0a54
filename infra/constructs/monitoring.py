"""The dashboard an operator watches a pass on, and the alarms that say when to look.

The workers' own numbers are EMF metrics named in `grid_reingest.telemetry`
(namespace `GridReingest`, dimensions `service` and `stage`; docs/infra.md
lists them); the rest comes from AWS/Lambda and from thrall's stream
(AWS/Kinesis).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from infra.config import StageConfig
from infra.constructs.workers import Worker

_PERIOD = Duration.minutes(c.METRIC_PERIOD_MINUTES)
_WIDTH = 24  # a dashboard row
_HEIGHT = 6

# Each scheduled worker's flow, in the order graphed.
_FLOW = {
    c.BATCH_INDEX: (names.CLAIMED, names.ENQUEUED, names.FAILED),
    c.BATCH_CHECK: (names.CLAIMED, names.VERIFIED, names.FAILED),
}
# Runs that did less than a full batch, and why.
_CONTROL = {
    c.BATCH_INDEX: (
        names.BACKPRESSURE_SKIPS,
        names.BREAKER_TRIPS,
        names.RELEASED,
        names.RECLAIMED,
        names.COMPLETED,
    ),
    c.BATCH_CHECK: (
        names.RELEASED,
        names.RECLAIMED,
        names.COMPLETED,
    ),
}


class Monitoring(Construct):
    """A CloudWatch dashboard `grid-reingest-<STAGE>` and the alarms on the workers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        workers: Mapping[str, Worker],
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._workers = workers
        self.alarms: dict[str, cw.Alarm] = {}  # by alarm name
        for service, worker in workers.items():
            self._build_error_alarm(service, worker)
        for service in _FLOW:
            self._build_failure_share_alarm(service)
        if config.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", config.alarm_topic_arn)
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(topic))
        self.dashboard = self._build_dashboard()

    # -- metrics ----------------------------------------------------------

    def metric(self, name: str, service: str, statistic: str = "Sum") -> cw.Metric:
        """One of a worker's own metrics in this stage."""
        return cw.Metric(
            namespace=names.NAMESPACE,
            metric_name=name,
            dimensions_map={
                names.SERVICE_DIMENSION: service,
                names.STAGE_DIMENSION: self._config.stage,
            },
            statistic=statistic,
            period=_PERIOD,
        )

    def _failure_share(self, service: str) -> cw.MathExpression:
        # Ids are per service: both workers' shares share a graph.
        suffix = service.replace("-", "_")
        failed, claimed = f"failed_{suffix}", f"claimed_{suffix}"
        return cw.MathExpression(
            expression=f"IF({claimed} > 0, {failed} / {claimed}, 0)",
            using_metrics={
                failed: self.metric(names.FAILED, service),
                claimed: self.metric(names.CLAIMED, service),
            },
            label=f"{service}: unknown failures / claimed",
            period=_PERIOD,
        )

    def _moved_into(self, state: ProgressState, running_total: bool) -> cw.MathExpression:
        # Both workers move images into some states (8, or 0 for a retry):
        # add up every service's count.
        search = (
            f"{{{names.NAMESPACE},{names.SERVICE_DIMENSION},{names.STAGE_DIMENSION}}} "
            f'{names.STAGE_DIMENSION}="{self._config.stage}" '
            f'MetricName="{names.state_metric(int(state))}"'
        )
        expression = f"SUM(SEARCH('{search}', 'Sum', {int(_PERIOD.to_seconds())}))"
        if running_total:
            expression = f"RUNNING_SUM({expression})"
        return cw.MathExpression(
            expression=expression,
            using_metrics={},
            label=f"{int(state)} {state.label}",
            period=_PERIOD,
        )

    # -- alarms -----------------------------------------------------------

    def _build_error_alarm(self, service: str, worker: Worker) -> None:
        name = c.resource_name(f"{service}-errors", self._config.stage)
        self.alarms[name] = cw.Alarm(
            self,
            f"{_pascal(service)}Errors",
            alarm_name=name,
            alarm_description=f"{c.resource_name(service, self._config.stage)} raised an "
            "error: its run stopped early (claims are released, or reclaimed after the "
            "lease). See its logs.",
            metric=worker.function.metric_errors(period=_PERIOD, statistic="Sum"),
            threshold=c.ERROR_ALARM_THRESHOLD,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _build_failure_share_alarm(self, service: str) -> None:
        share = self._config.unknown_failure_alarm_share
        name = c.resource_name(f"{service}-unknown-failures", self._config.stage)
        self.alarms[name] = cw.Alarm(
            self,
            f"{_pascal(service)}UnknownFailures",
            alarm_name=name,
            alarm_description=f"More than {share:.0%} of the images {service} claimed failed "
            f"for unknown reasons, {c.FAILURE_ALARM_PERIODS} periods running: the Grid may be "
            "unwell. See last_error on the items (`reingest stats`, `reingest scan-statuses`).",
            metric=self._failure_share(service),
            threshold=share,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=c.FAILURE_ALARM_PERIODS,
            datapoints_to_alarm=c.FAILURE_ALARM_PERIODS,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    # -- dashboard --------------------------------------------------------

    def _build_dashboard(self) -> cw.Dashboard:
        config = self._config
        index_rule = c.resource_name(c.BATCH_INDEX, config.stage)
        check_rule = c.resource_name(c.BATCH_CHECK, config.stage)
        dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=c.resource_name(None, config.stage),
            default_interval=Duration.hours(3),
        )
        dashboard.add_widgets(
            cw.TextWidget(
                markdown=(
                    f"# grid-reingest {config.stage}\n"
                    f"Start a pass: `aws events enable-rule --name {index_rule}`; check it: "
                    f"`aws events enable-rule --name {check_rule}`. Each worker switches its "
                    "own rule off when it finds nothing left to do. How many items are in "
                    "each state right now: `reingest stats`. Metrics: docs/infra.md."
                ),
                width=_WIDTH,
                height=2,
            )
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title=f"Images moved into each state, per {c.METRIC_PERIOD_MINUTES} min",
                left=[self._moved_into(state, running_total=False) for state in ProgressState],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Images moved into each state since the start of this range",
                left=[self._moved_into(state, running_total=True) for state in ProgressState],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(
            *(
                cw.GraphWidget(
                    title=f"{service}: images per {c.METRIC_PERIOD_MINUTES} min",
                    left=[self.metric(name, service) for name in names],
                    width=_WIDTH // 2,
                    height=_HEIGHT,
                )
                for service, names in _FLOW.items()
            )
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Unknown-failure share",
                left=[self._failure_share(service) for service in _FLOW],
                left_annotations=[
                    cw.HorizontalAnnotation(value=config.unknown_failure_alarm_share, label="alarm")
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Back-pressure: thrall's iterator age",
                left=[
                    cw.Metric(
                        namespace=names.KINESIS_NAMESPACE,
                        metric_name=names.ITERATOR_AGE_METRIC,
                        dimensions_map={names.STREAM_DIMENSION: stream},
                        statistic="Maximum",
                        period=_PERIOD,
                    )
                    for stream in config.watched_streams
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=config.max_iterator_age_ms, label="batch-index pauses above"
                    )
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(
            *(
                cw.GraphWidget(
                    title=f"{service}: runs that stopped short",
                    left=[self.metric(name, service) for name in names],
                    width=_WIDTH // 2,
                    height=_HEIGHT,
                )
                for service, names in _CONTROL.items()
            )
        )
        functions = [w.function for w in self._workers.values()]
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors (left) and throttles (right)",
                left=[f.metric_errors(period=_PERIOD, statistic="Sum") for f in functions],
                right=[f.metric_throttles(period=_PERIOD, statistic="Sum") for f in functions],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Lambda duration (max)",
                left=[f.metric_duration(period=_PERIOD, statistic="Maximum") for f in functions],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        # By name rather than by reference: the dashboard only needs the alarms'
        # fixed names, not the alarm resources themselves.
        dashboard.add_widgets(
            cw.AlarmStatusWidget(
                alarms=[
                    cw.Alarm.from_alarm_name(self, f"{alarm.node.id}Status", name)
                    for name, alarm in self.alarms.items()
                ],
                title="Alarms",
                width=_WIDTH,
                height=3,
            )
        )
        return dashboard


def _pascal(service: str) -> str:
    return "".join(part.title() for part in service.split("-"))
