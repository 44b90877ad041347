"""Metric names and dimensions: one place, shared by the functions and the cost tooling."""

NAMESPACE = "MLInference"

ITEMS_PROCESSED = "ItemsProcessed"
ITEM_ERRORS = "ItemErrors"
BATCH_SIZE = "BatchSize"
MODEL_LOAD_TIME = "ModelLoadTime"
IMPORT_TIME = "ImportTime"
INIT_TIME = "InitTime"  # import + model load, on a cold start
PEAK_MEMORY = "PeakMemory"  # the process's peak RSS so far, MB: size memory from it
INFERENCE_TIME = "InferenceTime"
READ_TIME = "ReadTime"
WRITE_TIME = "WriteTime"
BATCH_FAILURES = "BatchFailures"  # invocations that failed as a whole (a typed batch error)

DIMENSIONS = ("model", "memory_mb", "architecture")
