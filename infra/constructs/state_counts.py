"""The alarms and dashboard row of state-counts, the function that keeps the items per state
from the table's stream.

A tally that stops moving shows a pass that seems to stand still: `watch`
says how old its counts are, and these alarms tell somebody before the
stream drops the records it has not counted (after 24 hours).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from grid_reingest import names
from infra import constants as c
from infra.config import StageConfig

_PERIOD = Duration.minutes(c.METRIC_PERIOD_MINUTES)


class StateCountsAlarms(Construct):
    """`grid-reingest-state-counts-errors-<STAGE>` and `...-state-counts-late-<STAGE>`, and a
    row of the stage's dashboard: records counted, how late the tally is, the two alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        function: lambda_.IFunction,
        dashboard: cw.Dashboard,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = config.stage
        self.alarms: dict[str, cw.Alarm] = {}
        late = cw.Metric(
            namespace="AWS/Lambda",
            metric_name="IteratorAge",
            dimensions_map={"FunctionName": function.function_name},
            statistic="Maximum",
            period=_PERIOD,
        )
        self._alarm(
            c.resource_name(f"{names.STATE_COUNTS}-errors", stage),
            f"{c.resource_name(names.STATE_COUNTS, stage)} failed on a batch of the state "
            "table's stream: Lambda sends the batch again until it is counted, and the tally "
            "(what `reingest watch` and `stats` show) stands still meanwhile. See its logs.",
            function.metric_errors(period=_PERIOD, statistic="Sum"),
            threshold=c.ERROR_ALARM_THRESHOLD,
        )
        self._alarm(
            c.resource_name(f"{names.STATE_COUNTS}-late", stage),
            f"The tally of items per state is more than {c.STATE_COUNTS_LATE_ALARM_MINUTES} "
            "minutes behind the state table's writes (the function's IteratorAge): `reingest "
            "watch` shows old counts; records the stream drops after 24 h are never counted "
            "(`reingest stats --exact` recounts).",
            late,
            threshold=c.STATE_COUNTS_LATE_ALARM_MINUTES * 60 * 1000,
        )
        records = cw.Metric(
            namespace=names.NAMESPACE,
            metric_name=names.TALLY_RECORDS,
            dimensions_map={
                names.SERVICE_DIMENSION: names.STATE_COUNTS,
                names.STAGE_DIMENSION: stage,
            },
            statistic="Sum",
            period=_PERIOD,
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="state-counts: records counted (left), how late the tally is, ms (right)",
                left=[records],
                right=[late],
                width=16,
                height=6,
            ),
            # By name, as the dashboard's other alarms: it needs no reference to them.
            cw.AlarmStatusWidget(
                alarms=[
                    cw.Alarm.from_alarm_name(self, f"{alarm.node.id}Status", name)
                    for name, alarm in self.alarms.items()
                ],
                title="Alarms: state-counts",
                width=8,
                height=6,
            ),
        )

    def _alarm(self, name: str, description: str, metric: cw.IMetric, threshold: float) -> None:
        # Missing data never breaches: a quiet table sends the function nothing.
        self.alarms[name] = cw.Alarm(
            self,
            name.removeprefix(f"{names.APP}-").title().replace("-", ""),
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
