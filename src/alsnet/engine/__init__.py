"""Inference and training engines: BatchNorm folding, Winograd kernels, ONNX, the C++ kernels.

Every path computes what :class:`alsnet.model.network.ALSNet` computes, faster. Imports
:mod:`alsnet.model` and :mod:`alsnet.data`, nothing above.
"""
