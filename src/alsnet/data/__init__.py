"""Data: recordings and everything decided about them before a model sees them.

One reader per format, a :class:`~alsnet.data.source.Source` read by range
(:mod:`alsnet.data.wfdb_source`, :mod:`alsnet.data.formats`; opened and read whole through
:mod:`alsnet.data.io`), the model's rate and window length
(:mod:`alsnet.data.windows`), the label map (:mod:`alsnet.data.labels`), data sets and the
windows a task trains on (:mod:`alsnet.data.dataset`), the simulator, downloads and the
authors' pickles. Imports nothing of alsnet but :mod:`alsnet.errors`.
"""
