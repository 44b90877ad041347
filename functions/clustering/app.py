"""Clustering family: k-means, Gaussian mixture and PCA.

MODEL_NAME (set per function in template.yaml) picks the model; it loads during INIT.
"""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
