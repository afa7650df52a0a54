"""The name benchmarks/ still import the operators' table by: it is OperatorTable
(tables.py). Nothing else imports this module; it goes once they import OperatorTable."""

from grid_reingest.adapters.dynamodb.tables import OperatorTable as StateTable

__all__ = ["StateTable"]
