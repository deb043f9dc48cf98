"""The authors' framework as a reference: ALSNet in Keras (TensorFlow CPU), timed like bench.py.

Runs in its own environment, not alsnet's (TensorFlow and PyTorch in one process fight
over threads and memory)::

    python3 -m venv ~/.venvs/alsnet-keras
    ~/.venvs/alsnet-keras/bin/pip install tensorflow-cpu==2.21.0
    ~/.venvs/alsnet-keras/bin/python benchmarks/keras_reference.py --threads 2

``benchmarks/bench.py --keras-python ~/.venvs/alsnet-keras/bin/python`` runs it in each
round beside the PyTorch paths. The network is the paper's (docs: /shared ALSNET.md):
three Conv1D -> ReLU -> BatchNorm blocks (32 x 11, 64 x 9 dilation 2, 128 x 7 dilation 3,
'valid'), global max pooling, Dense(64) -> ReLU -> BatchNorm, Dense(1, sigmoid); Keras
defaults (BatchNorm momentum 0.99, epsilon 1e-3), Adam(1e-3, epsilon 1e-7), binary
cross-entropy. Inference is ``predict_on_batch`` (batch 16), a training step
``train_on_batch`` (batch 48), on random 1-s windows (23437 samples; speed does not
depend on the values). Prints a JSON list of two records (inference, training step) in bench.py's format.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time


def build(tf, n_times: int):
    """The paper's ALSNet as a compiled Keras model."""
    from tensorflow import keras
    from tensorflow.keras import layers

    x = inp = keras.Input((n_times, 1))
    for filters, k, d in ((32, 11, 1), (64, 9, 2), (128, 7, 3)):
        x = layers.Conv1D(filters, k, dilation_rate=d, activation="relu", kernel_initializer="he_normal")(x)
        x = layers.BatchNormalization()(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-7), loss="binary_crossentropy")
    return model


def timed(fn, iters: int) -> tuple[float, float]:
    """(median seconds of ``iters`` calls, seconds of the warm-up call before them)."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), warm


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=23437)
    ap.add_argument("--infer-batch", type=int, default=16)
    ap.add_argument("--train-batch", type=int, default=48)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import numpy as np
        import tensorflow as tf
    except ImportError as e:
        print(f"keras_reference: TensorFlow is not installed in {sys.executable} ({e})", file=sys.stderr)
        return 2
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = build(tf, args.samples)
    rng = np.random.default_rng(0)
    xi = (rng.standard_normal((args.infer_batch, args.samples, 1)) * 50).astype(np.float32)
    xt = (rng.standard_normal((args.train_batch, args.samples, 1)) * 50).astype(np.float32)
    yt = rng.integers(0, 2, (args.train_batch, 1)).astype(np.float32)
    base = rss_mb()
    t_inf, w_inf = timed(lambda: model.predict_on_batch(xi), args.iters)
    rss_inf = rss_mb()
    t_train, w_train = timed(lambda: model.train_on_batch(xt, yt), args.iters)
    common = {"path": "keras", "tensorflow": tf.__version__, "threads": args.threads,
              "params": int(model.count_params()), "base_rss_mb": base}
    print(json.dumps([
        {**common, "kind": "infer", "batch": args.infer_batch, "windows_per_s": args.infer_batch / t_inf,
         "warmup_s": w_inf, "peak_rss_mb": rss_inf},
        {**common, "kind": "train", "batch": args.train_batch, "windows_per_s": args.train_batch / t_train,
         "warmup_s": w_train, "peak_rss_mb": rss_mb()}]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
