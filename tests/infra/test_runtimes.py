"""Every function's runtime has six months of AWS support left, counted from today's clock,
so that a checkout deployed long after it was written fails here, not in Lambda."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from infra import asset, runtimes
from infra import constants as c


def function_runtimes(template: dict[str, Any]) -> dict[str, str]:
    """Each Lambda function's logical id and runtime (a container image has none)."""
    return {
        logical_id: resource["Properties"]["Runtime"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and "Runtime" in resource["Properties"]
    }


def support_problems(template: dict[str, Any], today: date) -> list[str]:
    """What is wrong with each function's runtime on `today`."""
    found = (
        (logical_id, runtimes.support_problem(runtime, today))
        for logical_id, runtime in sorted(function_runtimes(template).items())
    )
    return [f"{logical_id}: {problem}" for logical_id, problem in found if problem]


@pytest.mark.slow
@pytest.mark.parametrize("stage", c.STAGES)
def test_runtimes_every_function_has_six_months_of_support_left(assembly, stage):
    template = assembly.raw(stage)

    # Every function but the optional repair (none in cdk.json as it ships)
    assert len(function_runtimes(template)) == len(c.HANDLERS) - 1
    assert support_problems(template, datetime.now(UTC).date()) == []


def test_runtimes_a_function_on_a_deprecated_runtime_fails():
    # Given a template with a function on python3.11, one on python3.13 and a container image
    template = {
        "Resources": {
            "Old": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.11"}},
            "New": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.13"}},
            "Image": {"Type": "AWS::Lambda::Function", "Properties": {"PackageType": "Image"}},
        }
    }

    # Then on the day after Amazon Linux 2's end only the python3.11 function is named
    assert support_problems(template, date(2026, 7, 1)) == [
        f"Old: python3.11 is deprecated since 2026-06-30 ({runtimes.SOURCE}): "
        "move to a newer runtime"
    ]


@pytest.mark.parametrize(
    ("today", "problem"),
    [
        (date(2028, 12, 28), None),  # 184 days before its deprecation
        (date(2028, 12, 29), "deprecated on 2029-06-30, 183 days from 2028-12-29"),
        (date(2029, 6, 29), "deprecated on 2029-06-30, 1 day from 2029-06-29"),
        (date(2029, 6, 30), "deprecated since 2029-06-30"),
    ],
)
def test_runtimes_a_runtime_fails_six_months_before_its_deprecation(today, problem):
    found = runtimes.support_problem("python3.13", today)

    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_runtimes_an_unknown_runtime_fails_until_its_date_is_added():
    problem = runtimes.support_problem("python3.15", date(2027, 1, 1))

    assert problem == (
        "python3.15 has no deprecation date in infra/runtimes.py: add it from " + runtimes.SOURCE
    )


def test_runtimes_the_functions_runtime_is_in_the_table():
    assert asset.RUNTIME.name in runtimes.DEPRECATION
