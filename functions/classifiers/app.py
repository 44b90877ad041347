"""Classifier family: logistic regression, linear SVM and random forest text classifiers.

MODEL_NAME (set per function in template.yaml) picks the model; it loads during INIT.
"""

from mlinfer.runtime.handler import create_handler

handler = create_handler()
