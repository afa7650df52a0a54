"""The alarms that tell somebody when to look, and the dashboard (dashboard.py) to look at.

The metrics (stage_metrics.py): the workers' own numbers are EMF metrics named
in `grid_reingest.names` (namespace `GridReingest`, dimensions `service` and
`stage`; docs/infra.md lists them); the rest comes from AWS/Lambda, from the schedules (AWS/Events)
and from thrall's stream (AWS/Kinesis). Every alarm notifies the stage's alarm
topic: an existing one (`alarmTopicArn`) or one of the stack's own with an
email subscriber (`alarmEmail`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from grid_reingest import names
from infra import constants as c
from infra.config import StageConfig
from infra.constructs.dashboard import DashboardBuilder
from infra.constructs.functions import Worker
from infra.constructs.stage_metrics import FLOW, PERIOD, SAFETY, StageMetrics


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
        self.metrics = StageMetrics(config)
        self.alarms: dict[str, cw.Alarm] = {}  # by alarm name
        for service, worker in workers.items():
            self._build_error_alarm(service, worker)
        for service in FLOW:
            self._build_failure_share_alarm(service)
            self._build_stalled_alarm(service)
        self._build_held_back_alarm()
        for name, (part, why) in _UNREAD_ALARMS.items():
            self._alarm(
                f"{names.BATCH_INDEX}-{part}",
                f"batch-index: {why}",
                self.metrics.metric(name, names.BATCH_INDEX),
                threshold=c.UNREAD_ALARM_STEPS,
            )
        for service, metric_names in SAFETY.items():
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
        self.dashboard = DashboardBuilder(self, config, self.metrics, workers, self.alarms).build()

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
            worker.function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=c.ERROR_ALARM_THRESHOLD,
        )

    def _build_failure_share_alarm(self, service: str) -> None:
        share = self._config.unknown_failure_alarm_share
        self._alarm(
            f"{service}-unknown-failures",
            f"More than {share:.0%} of the images {service} claimed failed for unknown "
            f"reasons, {c.FAILURE_ALARM_PERIODS} periods running: the Grid may be unwell. "
            "See last_error on the items (`reingest stats`, `reingest scan-statuses`).",
            self.metrics.failure_share(service),
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
            self.metrics.stalled(service),
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
            self.metrics.held_back(),
            periods=c.STALL_ALARM_PERIODS,
        )

    def _build_safety_alarm(self, service: str, metric_name: str) -> None:
        part, why = _SAFETY_ALARMS[metric_name]
        self._alarm(
            f"{service}-{part}",
            f"{service}: {why}",
            self.metrics.metric(metric_name, service),
            threshold=c.SAFETY_ALARM_THRESHOLD,
        )

    def _build_projection_throttle_alarm(self, worker: Worker) -> None:
        self._alarm(
            f"{names.IMAGE_PROJECTION}-throttles",
            "image-projection was throttled: its reserved concurrency should cover every "
            "projection batch-index can have in flight (the pass's ceiling is the lower of "
            "gridConcurrency and imageProjection.reservedConcurrency), or something else "
            "invokes it. Throttled images go back with no attempt counted, but the pass slows.",
            worker.function.metric_throttles(period=PERIOD, statistic="Sum"),
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


def _pascal(part: str) -> str:
    return "".join(word.title() for word in part.split("-"))
