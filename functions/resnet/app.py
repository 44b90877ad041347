"""ResNet-50, whole or one of its five stages (MODEL_NAME); the graph loads during INIT."""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
