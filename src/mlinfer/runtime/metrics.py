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
# Generation (the TinyLlama family, through ModelAdapter.drain_metrics)
TOKENS_GENERATED = "TokensGenerated"
PROMPT_TOKENS = "PromptTokens"
TIME_TO_FIRST_TOKEN = "TimeToFirstToken"
TOKENS_PER_SECOND = "TokensPerSecond"  # decoding, all the prompts of a generator call together
BATCH_FAILURES = "BatchFailures"  # invocations that failed as a whole (a typed batch error)

DIMENSIONS = ("model", "memory_mb", "architecture")
