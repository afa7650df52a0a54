"""When AWS stops supporting the Lambda runtimes this app may run on, and whether one is ageing.

The dates are the "Deprecation date" column of AWS's "Lambda runtimes" page
(AWS Lambda Developer Guide, https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html,
the supported and the deprecated runtimes tables). From that date AWS no longer
patches the runtime; later, in stages, it blocks creating and then updating
functions on it. A runtime's date follows its operating system's end of
support where that comes first: python3.10 and python3.11 run on Amazon
Linux 2 (ended 30 June 2026), python3.13 and python3.14 on Amazon Linux 2023
(ends 30 June 2029). When AWS changes a date or adds a runtime, change it
here, and only here.

Example::

    problem = support_problem("python3.13", date.today())  # None while it has time left
"""

from __future__ import annotations

from datetime import date, timedelta

SOURCE = "AWS Lambda Developer Guide, 'Lambda runtimes', Deprecation date"
DEPRECATION = {
    "python3.9": date(2025, 12, 15),
    "python3.10": date(2026, 6, 30),
    "python3.11": date(2026, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
    "python3.14": date(2029, 6, 30),
}
# Time left to move to a newer runtime, test it and deploy every stage: six months.
MARGIN = timedelta(days=183)


def support_problem(runtime: str, today: date) -> str | None:
    """Why `runtime` should not be deployed on `today` (deprecated, or nearly), or None."""
    deprecated = DEPRECATION.get(runtime)
    if deprecated is None:
        return f"{runtime} has no deprecation date in infra/runtimes.py: add it from {SOURCE}"
    if today >= deprecated:
        return f"{runtime} is deprecated since {deprecated} ({SOURCE}): move to a newer runtime"
    if today >= deprecated - MARGIN:
        days = (deprecated - today).days
        return (
            f"{runtime} is deprecated on {deprecated}, {days} day{'s' * (days != 1)} from "
            f"{today} ({SOURCE}): move to a newer runtime"
        )
    return None
