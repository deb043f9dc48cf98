"""Evaluation: metrics at three levels, calibration, decision rules, features and baselines.

Imports :mod:`alsnet.data` (labels) only; training and reporting build on it.
"""
