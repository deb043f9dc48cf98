"""The model: the ALSNet network, saved models (weights and cards) and the bundled models.

Imports :mod:`alsnet.data` (rate, window, labels) and nothing above it.
"""
