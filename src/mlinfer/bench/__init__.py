"""Benchmark tooling: parse platform and EMF logs, sweep configurations, report and recommend."""
