"""Batch ML inference on AWS Lambda: shared runtime, model adapters, cost model and local runner."""

__version__ = "0.1.0"
