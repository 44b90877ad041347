"""TinyLlama text generation (1.1B chat, v0) with ONNX Runtime GenAI. MODEL_NAME picks the model."""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
