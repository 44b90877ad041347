"""The batch workflow's own steps; the template picks one per function with ImageConfig.Command."""

from mlinfer.workflow.handlers import plan_handler, summarize_handler

__all__ = ["plan_handler", "summarize_handler"]
