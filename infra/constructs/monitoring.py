"""The dashboard an operator watches a pass on, and the alarms that tell somebody when to look.

The workers' own numbers are EMF metrics named in `grid_reingest.names`
(namespace `GridReingest`, dimensions `service` and `stage`; docs/infra.md
lists them); the rest comes from AWS/Lambda, from the schedules (AWS/Events)
and from thrall's stream (AWS/Kinesis). Every alarm notifies the stage's alarm
topic: an existing one (`alarmTopicArn`) or one of the stack's own with an
email subscriber (`alarmEmail`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from infra.config import StageConfig
from infra.constructs.functions import Worker

_PERIOD = Duration.minutes(c.METRIC_PERIOD_MINUTES)
_WIDTH = 24  # a dashboard row
_HEIGHT = 6

# Each scheduled worker's flow, in the order graphed.
_FLOW = {
    names.BATCH_INDEX: (names.CLAIMED, names.ENQUEUED, names.FAILED),
    names.BATCH_CHECK: (names.CLAIMED, names.VERIFIED, names.FAILED),
}
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
# The pace: what the controller allows, and what it reacts to.
_PACE_LEVELS = (names.CONTROL_LIMIT, names.CONTROL_RATE, names.PAUSED)
_PACE_EVENTS = (
    names.OVERLOAD,
    names.INFRA_RELEASED,
    names.CHECKPOINTS_UNREAD,
    names.ITERATOR_AGE_UNREAD,
)
# What should never happen in a healthy pass; each has an alarm.
_SAFETY = {
    names.BATCH_INDEX: (
        names.KINESIS_REFUSED,
        names.LOST_CLAIMS,
        names.EXPIRED_CLAIMS,
        names.SYSTEMIC_FAILURES,
    ),
    names.BATCH_CHECK: (names.LOST_CLAIMS, names.EXPIRED_CLAIMS, names.SYSTEMIC_FAILURES),
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
            self._build_stalled_alarm(service)
        self._build_held_back_alarm()
        for name, (part, why) in _UNREAD_ALARMS.items():
            self._alarm(
                f"{names.BATCH_INDEX}-{part}",
                f"batch-index: {why}",
                self.metric(name, names.BATCH_INDEX),
                threshold=c.UNREAD_ALARM_STEPS,
            )
        for service, metric_names in _SAFETY.items():
            for name in metric_names:
                self._build_safety_alarm(service, name)
        self._build_projection_throttle_alarm(workers[names.IMAGE_PROJECTION])
        if names.REPAIR in workers:
            self._build_safety_alarm(names.REPAIR, names.REPAIR_REFUSED)
        self.topic = self._build_topic()
        if self.topic is not None:
            action = cw_actions.SnsAction(self.topic)
            for alarm in self.alarms.values():
                alarm.add_alarm_action(action)
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

    def _rule_ticks(self, service: str) -> cw.Metric:
        # EventBridge counts the targets it invoked: data only while the rule is on.
        return cw.Metric(
            namespace=c.EVENTS_NAMESPACE,
            metric_name=c.RULE_INVOCATIONS_METRIC,
            dimensions_map={c.RULE_DIMENSION: c.resource_name(service, self._config.stage)},
            statistic="Sum",
            period=_PERIOD,
        )

    def _iterator_ages(self) -> list[cw.Metric]:
        return [
            cw.Metric(
                namespace=names.KINESIS_NAMESPACE,
                metric_name=names.ITERATOR_AGE_METRIC,
                dimensions_map={names.STREAM_DIMENSION: stream},
                statistic="Maximum",
                period=_PERIOD,
            )
            for stream in self._config.watched_streams
        ]

    def _failure_share(self, service: str) -> cw.MathExpression:
        # Ids are per service: both workers' shares share a graph.
        suffix = _suffix(service)
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

    def _stalled(self, service: str) -> cw.MathExpression:
        # 1 in a period where the rule ticked but nothing was claimed, the pass
        # did not finish and the operator had not paused it. FILL: a worker that
        # emitted nothing at all moved nothing.
        suffix = _suffix(service)
        ticks, claimed = f"ticks_{suffix}", f"claimed_{suffix}"
        finished, paused = f"finished_{suffix}", f"paused_{suffix}"
        return cw.MathExpression(
            expression=(
                f"IF(FILL({ticks}, 0) > 0 AND FILL({claimed}, 0) + FILL({finished}, 0) "
                f"+ FILL({paused}, 0) == 0, 1, 0)"
            ),
            using_metrics={
                ticks: self._rule_ticks(service),
                claimed: self.metric(names.CLAIMED, service),
                finished: self.metric(names.COMPLETED, service),
                paused: self.metric(names.PAUSED, service, "Maximum"),
            },
            label=f"{service}: rule on, nothing moving",
            period=_PERIOD,
        )

    def _held_back(self) -> cw.MathExpression:
        # 1 in a period where batch-index's rule ticked while the highest
        # iterator age of the watched streams was above the threshold: every
        # run of that period took no work.
        ages = {f"age_{i}": metric for i, metric in enumerate(self._iterator_ages())}
        ticks = "ticks_batch_index"
        highest = next(iter(ages)) if len(ages) == 1 else f"MAX([{', '.join(ages)}])"
        return cw.MathExpression(
            expression=(
                f"IF(FILL({ticks}, 0) > 0 AND {highest} > {self._config.max_iterator_age_ms}, 1, 0)"
            ),
            using_metrics={ticks: self._rule_ticks(names.BATCH_INDEX), **ages},
            label="batch-index: held back by thrall's iterator age",
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

    def _alarm(
        self,
        part: str,
        description: str,
        metric: cw.IMetric,
        *,
        threshold: float = 1,
        periods: int = 1,
        comparison: cw.ComparisonOperator = (
            cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> None:
        """`grid-reingest-<part>-<STAGE>`; missing data never breaches (a quiet stage is fine)."""
        name = c.resource_name(part, self._config.stage)
        self.alarms[name] = cw.Alarm(
            self,
            _pascal(part),
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _build_error_alarm(self, service: str, worker: Worker) -> None:
        self._alarm(
            f"{service}-errors",
            f"{c.resource_name(service, self._config.stage)} failed an invocation: a "
            "configuration error (a stream that refuses every call, a revoked API key) or a "
            "bug. Its claims were given back, or are reclaimed after the lease. See its logs.",
            worker.function.metric_errors(period=_PERIOD, statistic="Sum"),
            threshold=c.ERROR_ALARM_THRESHOLD,
        )

    def _build_failure_share_alarm(self, service: str) -> None:
        share = self._config.unknown_failure_alarm_share
        self._alarm(
            f"{service}-unknown-failures",
            f"More than {share:.0%} of the images {service} claimed failed for unknown "
            f"reasons, {c.FAILURE_ALARM_PERIODS} periods running: the Grid may be unwell. "
            "See last_error on the items (`reingest stats`, `reingest scan-statuses`).",
            self._failure_share(service),
            threshold=share,
            periods=c.FAILURE_ALARM_PERIODS,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def _build_stalled_alarm(self, service: str) -> None:
        minutes = c.STALL_ALARM_PERIODS * c.METRIC_PERIOD_MINUTES
        self._alarm(
            f"{service}-stalled",
            f"{service}'s rule has been on for {minutes} min and it claimed nothing, did not "
            "finish the pass and was not paused: the pass is stalled. Look at its errors and "
            "logs, thrall's iterator age (back-pressure) and `reingest watch`.",
            self._stalled(service),
            periods=c.STALL_ALARM_PERIODS,
        )

    def _build_held_back_alarm(self) -> None:
        minutes = c.STALL_ALARM_PERIODS * c.METRIC_PERIOD_MINUTES
        self._alarm(
            f"{names.BATCH_INDEX}-held-back",
            f"thrall's iterator age has been above {self._config.max_iterator_age_ms} ms for "
            f"{minutes} min while batch-index's rule was on: back-pressure skips every run "
            "and the pass does not move. thrall may be stuck or slow; the pass resumes by "
            "itself once it catches up.",
            self._held_back(),
            periods=c.STALL_ALARM_PERIODS,
        )

    def _build_safety_alarm(self, service: str, metric_name: str) -> None:
        part, why = _SAFETY_ALARMS[metric_name]
        self._alarm(
            f"{service}-{part}",
            f"{service}: {why}",
            self.metric(metric_name, service),
            threshold=c.SAFETY_ALARM_THRESHOLD,
        )

    def _build_projection_throttle_alarm(self, worker: Worker) -> None:
        self._alarm(
            f"{names.IMAGE_PROJECTION}-throttles",
            "image-projection was throttled: its reserved concurrency should cover every "
            "projection batch-index can have in flight (the pass's ceiling is the lower of "
            "gridConcurrency and imageProjection.reservedConcurrency), or something else "
            "invokes it. Throttled images go back with no attempt counted, but the pass slows.",
            worker.function.metric_throttles(period=_PERIOD, statistic="Sum"),
            threshold=c.SAFETY_ALARM_THRESHOLD,
        )

    def _build_topic(self) -> sns.ITopic | None:
        config = self._config
        if config.alarm_topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", config.alarm_topic_arn)
        if not config.alarm_email:
            return None
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=c.resource_name("alarms", config.stage),
            display_name=f"grid-reingest {config.stage} alarms",
            enforce_ssl=True,
        )
        # The topic policy CDK writes for enforce_ssl replaces SNS's default
        # one: let this account's alarms publish, and nobody else's.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        topic_resource = topic.node.default_child
        assert topic_resource is not None  # the CfnTopic under every Topic
        Validations.of(topic_resource).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SNS2",
                reason="Alarm notifications carry alarm names and states only, no data; "
                "CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, "
                "and a customer-managed key for them would cost more than it protects.",
            )
        )
        return topic

    # -- dashboard --------------------------------------------------------

    def _build_dashboard(self) -> cw.Dashboard:
        config = self._config
        index_rule = c.resource_name(names.BATCH_INDEX, config.stage)
        check_rule = c.resource_name(names.BATCH_CHECK, config.stage)
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
                    left=[self.metric(name, service) for name in metric_names],
                    width=_WIDTH // 2,
                    height=_HEIGHT,
                )
                for service, metric_names in _FLOW.items()
            )
        )
        dashboard.add_widgets(*self._pace_widgets())
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
                left=self._iterator_ages(),
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
                    left=[self.metric(name, service) for name in metric_names],
                    width=_WIDTH // 2,
                    height=_HEIGHT,
                )
                for service, metric_names in _CONTROL.items()
            )
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Safety: refused Kinesis calls, lost and expired claims (each alarms)",
                left=[
                    self.metric(name, service)
                    for service, metric_names in _SAFETY.items()
                    for name in metric_names
                ],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Stalled: rule on, nothing moving (1) / held back by thrall (1)",
                left=[*(self._stalled(service) for service in _FLOW), self._held_back()],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        )
        dashboard.add_widgets(*self._projection_widgets())
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
                height=4,
            )
        )
        return dashboard

    def _pace_widgets(self) -> list[cw.IWidget]:
        workers = tuple(_FLOW)
        return [
            cw.GraphWidget(
                title="Pace: images in flight allowed (left), images a minute allowed (right)",
                left=[self.metric(names.CONTROL_LIMIT, s, "Average") for s in workers],
                right=[self.metric(names.CONTROL_RATE, s, "Average") for s in workers],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="Pace: overload answers and claims given back for them (left), paused "
                "(right)",
                left=[self.metric(name, s) for name in _PACE_EVENTS for s in workers],
                right=[self.metric(names.PAUSED, s, "Maximum") for s in workers],
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
                left=[self.metric(name, service) for name in counts],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
            cw.GraphWidget(
                title="image-projection: time in ms (left, p50 and max), image size in bytes "
                "(right, max)",
                left=[
                    self.metric(names.PROJECTION_TIME, service, "p50"),
                    self.metric(names.PROJECTION_TIME, service, "Maximum"),
                ],
                right=[self.metric(names.IMAGE_SIZE, service, "Maximum")],
                width=_WIDTH // 2,
                height=_HEIGHT,
            ),
        ]


# Each safety metric's alarm: the name part, and what it means for the operator.
_SAFETY_ALARMS = {
    names.KINESIS_REFUSED: (
        "kinesis-refused",
        "thrall's stream refused whole PutRecords calls (access denied, KMS, a missing "
        "stream or a wrong ARN). Nothing was published; the claims went back. Check the "
        "stream, its key and the function's role.",
    ),
    names.LOST_CLAIMS: (
        "lost-claims",
        "an outcome could not be recorded because the claim had moved on (another worker "
        "took it after the lease, or an operator reset it). The image may have been published "
        "twice; see the worker's logs for the ids.",
    ),
    names.EXPIRED_CLAIMS: (
        "expired-claims",
        "claims were taken over after their lease ran out: a worker died holding them "
        "(timeout, out of memory, a huge or slow image). Each counted an attempt; see the "
        "functions' errors and durations.",
    ),
    names.REPAIR_REFUSED: (
        "refused",
        "a run of the scheduled repair found a pass still running and started nothing (one "
        "pass at a time). `reingest passes` shows which; it ends when both workers are done, "
        "or stop it. The report topic was told too.",
    ),
    names.SYSTEMIC_FAILURES: (
        "systemic-failures",
        "an invocation stopped for the system's failure: a Grid service down or failing for "
        "the images alike (a probe of an image it had served failed too), the key refused, or "
        "overload across most images. Its claims went back with no attempt; the pass goes on "
        "when the service does. The log's `systemic` field names the service and the answer.",
    ),
}


# Each pace signal's alarm when it cannot be read for a while: the name part, and why.
_UNREAD_ALARMS = {
    names.CHECKPOINTS_UNREAD: (
        "checkpoints-unread",
        "thrall's lease table (thrallCheckpointTable) could not be read for 5 minutes or more "
        "(missing, access denied, throttled, an item it does not understand). The pass goes "
        "on, paced on CloudWatch's iterator age, which is minutes late; the controller's "
        "reason in `reingest watch` says why. Check the table's name (thrall's stream name) "
        "and the function's role.",
    ),
    names.ITERATOR_AGE_UNREAD: (
        "iterator-age-unread",
        "thrall's iterator age could not be read from CloudWatch for 5 minutes or more: "
        "batch-index holds its pace for 5 minutes, then takes nothing until it can read it "
        "again. Check cloudwatch:GetMetricStatistics on the function's role.",
    ),
}


def _suffix(service: str) -> str:
    return service.replace("-", "_")


def _pascal(part: str) -> str:
    return "".join(word.title() for word in part.split("-"))
