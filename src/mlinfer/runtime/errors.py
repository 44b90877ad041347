"""Typed errors. A batch-level error fails the invocation; item-level problems never do."""


class BatchError(Exception):
    """Base class for errors that fail a whole invocation (Step Functions sees ``errorType``)."""


class InvalidEventError(BatchError):
    """The event matches none of the accepted batch shapes."""


class UnknownModelError(BatchError):
    """The requested model is not in the registry, or not the one this function serves."""


class ModelLoadError(BatchError):
    """The model artifact is missing or cannot be loaded."""


class SourceReadError(BatchError):
    """The referenced input (an S3 object or a local file) cannot be read."""
