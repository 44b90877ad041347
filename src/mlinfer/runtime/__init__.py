"""The shared Lambda runtime: event parsing, per-item validation, the handler wrapper, metrics.

Functions import the wrapper from :mod:`mlinfer.runtime.handler` (it pulls in Powertools and the
registry); this package's top level stays import-light.
"""
