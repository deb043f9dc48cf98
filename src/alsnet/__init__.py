"""alsnet: ALSNet, a dilated 1-D CNN that detects ALS from raw needle EMG, evaluated honestly."""

__version__ = "0.1.0"

__all__ = ["__version__", "predict"]


def predict(*args, **kwargs):
    """Diagnose one recording; see :func:`alsnet.predict.predict`."""
    from alsnet.predict import predict as _predict

    return _predict(*args, **kwargs)
