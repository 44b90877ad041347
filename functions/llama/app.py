"""TinyLlama text generation (1.1B chat, v0). MODEL_NAME picks the model; LLAMA_QUANTIZE=int8 is optional."""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
