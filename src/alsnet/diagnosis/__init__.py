"""Diagnosis: a trained model applied to new recordings (predict, explain).

Imports data, model, engine and evaluation (the one decision rule); not training.
"""
