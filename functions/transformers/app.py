"""BERT-family text classification (DistilBERT, bert-base). MODEL_NAME picks the model; it loads during INIT."""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
