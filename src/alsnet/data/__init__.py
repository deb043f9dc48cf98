"""Data: recordings and everything decided about them before a model sees them.

One reader per format (:mod:`alsnet.data.io`), the model's rate and window length
(:mod:`alsnet.data.windows`), the label map (:mod:`alsnet.data.labels`), data sets and the
windows a task trains on (:mod:`alsnet.data.dataset`), the simulator, downloads and the
authors' pickles. Imports nothing of alsnet but :mod:`alsnet.errors`.
"""
