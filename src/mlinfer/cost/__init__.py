"""Prices (``prices.json``) and cost arithmetic for Lambda and, later, Step Functions."""

from mlinfer.cost.pricing import (
    LambdaCost,
    PriceTable,
    billed_ms,
    gb_seconds,
    lambda_cost,
    load_prices,
    project_lambda_cost,
    tiered_cost,
)

__all__ = [
    "LambdaCost",
    "PriceTable",
    "billed_ms",
    "gb_seconds",
    "lambda_cost",
    "load_prices",
    "project_lambda_cost",
    "tiered_cost",
]
