"""Fast ALSNet on the CPU: inference engines and a faster training step, same answers.

Public API (others code against these names):

* :class:`InferenceEngine` ``(model, backend="auto", threads=None)``: eval-mode scoring,
  ``.logits(x)`` for ``(N, T)`` or ``(N, 1, T)`` float32 µV (any ``T >= 45``, any ``N``)
  → ``np.ndarray (N, n_outputs)``; ``.backend`` is the backend used and ``.name`` says
  what ran, with the kernels' instruction set where they run (``"winograd-avx512"``).
* :func:`available_backends`, :func:`set_threads`.
* :func:`train_forward` ``(model, x)``: the same logits, running statistics and
  gradients as ``model(x)``, computed faster (see :mod:`alsnet.engine.train_step`).

Backends (``docs/performance.md`` has the measured speeds and parity):

``eager``     the reference: the ``nn.Module`` itself.
``folded``    plain PyTorch, BatchNorms folded into the next layer and BN3 + max pool
              reduced to 128 numbers per window (:mod:`alsnet.engine.fold`).
``fused``     C++ kernels in (N, T, C) layout, direct convolution by MKL GEMMs on L2-sized
              time chunks, nothing but conv2's output ever written to memory.
``winograd``  the same kernels with Winograd F(4, 9) and F(6, 7) filtering: 3-3.5x fewer
              multiplies in conv2/conv3 (:mod:`alsnet.engine.winograd`).
``onnx``      ONNX Runtime (fp32) on the folded graph, dynamic batch and time axes.
``int8``      ONNX Runtime dynamic int8 quantisation of the folded graph (not faithful:
              never chosen by ``auto``; see the parity table).
``bf16``      the folded graph under bfloat16 autocast (no bf16 hardware here: slow).
``compiled``  ``torch.compile`` (inductor) of the folded graph; compiles per new shape.

``auto`` picks the fastest faithful backend that works here: ``winograd`` where the
kernels build, else ``folded``. Engines snapshot the weights when built: make a new
engine after changing the model.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from alsnet.engine.fold import Folded, FoldedALSNet, fold
from alsnet.errors import AlsnetError
from alsnet.model.network import RECEPTIVE_FIELD, ALSNet

#: Fastest first; ``auto`` takes the first available of these (all fp32-faithful).
AUTO_ORDER = ("winograd", "fused", "folded", "eager")
BACKENDS = ("eager", "folded", "fused", "winograd", "onnx", "int8", "bf16", "compiled")
#: Backends whose logits match eager fp32 to float32 rounding (parity-checked).
FAITHFUL = ("eager", "folded", "fused", "winograd", "onnx", "compiled")

# Inputs longer than this are scored in overlapping time segments (the max pool is
# associative), so memory stays bounded for hour-long recordings.
MAX_SEGMENT = 1 << 17
#: Output tile sizes (conv2, conv3) of the inference kernels: Winograd F(6, 9) and F(8, 7)
#: (alpha = 14, see alsnet.engine.winograd), or 1 for direct convolutions (``fused``).
WINOGRAD_M = {"winograd": (6, 8), "fused": (1, 1)}


def set_threads(n: int | None) -> int:
    """Set PyTorch's (and the kernels') thread count; returns the count in use."""
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def keep_freed_memory() -> bool:
    """Let this process's allocator keep freed memory for reuse (glibc: no mmap, no trim).

    For training on the CPU: a step allocates and frees hundreds of MB of activations, which
    glibc otherwise returns to the kernel and gets back as fresh pages that are zeroed on
    first touch. Measured on real N2001 windows, one thread, alternating runs: a step on 48
    whole windows 4.1 s instead of 5.0 s, on 48 crops of 0.125 s 0.57 s instead of 0.63 s;
    peak RSS +3 % (crops) to +14 % (whole windows). Process-wide and irreversible, so only
    training calls it; needs the kernels (returns False without them or on a C library other
    than glibc).
    """
    if not _kernels_ok():
        return False
    return bool(torch.ops.alsnet.keep_freed_memory())


def _kernels_ok() -> bool:
    from alsnet.engine.kernels import ensure

    return ensure() is not None


def _onnx_ok() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _compile_ok() -> bool:
    import shutil

    return hasattr(torch, "compile") and bool(shutil.which("g++") or shutil.which("c++"))


def available_backends() -> list[str]:
    """Backends usable on this machine (building the C++ kernels on first call)."""
    out = ["eager", "folded"]
    if _kernels_ok():
        out += ["fused", "winograd"]
    if _onnx_ok():
        out += ["onnx", "int8"]
    out.append("bf16")
    if _compile_ok():
        out.append("compiled")
    return out


# --------------------------------------------------------------------------- backends

class _Eager:
    def __init__(self, model: ALSNet, threads: int | None):
        self.model = model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model(x[:, None, :])
        finally:
            self.model.train(was)


class _MaxMin:
    """Backends that reduce a window to conv3's max/min, so time can be segmented."""

    group = 16

    def __init__(self, folded: Folded):
        self.f = folded

    def maxmin(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        N, T = x.shape
        if T <= MAX_SEGMENT:
            parts = [self.maxmin(x[i:i + self.group]) for i in range(0, N, self.group)]
            zmax = torch.cat([p[0] for p in parts])
            zmin = torch.cat([p[1] for p in parts])
        else:  # overlapping segments: each conv3 output lies wholly inside one segment
            step = MAX_SEGMENT - (RECEPTIVE_FIELD - 1)
            zmax = torch.full((N, self.f.b3.shape[0]), -torch.inf)
            zmin = torch.full((N, self.f.b3.shape[0]), torch.inf)
            for s in range(0, T - RECEPTIVE_FIELD + 1, step):
                seg = x[:, s:s + MAX_SEGMENT]
                for i in range(0, N, self.group):
                    a, b = self.maxmin(seg[i:i + self.group].contiguous())
                    zmax[i:i + self.group] = torch.maximum(zmax[i:i + self.group], a)
                    zmin[i:i + self.group] = torch.minimum(zmin[i:i + self.group], b)
        with torch.no_grad():
            return self.f.tail(zmax, zmin)


class _Folded(_MaxMin):
    group = 4

    def __init__(self, folded: Folded, threads: int | None):
        super().__init__(folded)
        self.net = FoldedALSNet(folded).eval()

    def maxmin(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.nn.functional as F

        n = self.net
        with torch.no_grad():
            h = torch.relu(F.conv1d(x[:, None, :], n.w1, n.b1, dilation=n.d[0]))
            h = torch.relu(F.conv1d(h, n.w2, n.b2, dilation=n.d[1]))
            z = F.conv1d(h, n.w3, n.b3, dilation=n.d[2]).amax(dim=-1)
        # rows with a3 < 0 were negated: there z is -(min of the true z). The tail reads
        # the max where a3 >= 0 and the min elsewhere, so the other entries never matter.
        return z, -z


class _Kernels(_MaxMin):
    """C++ kernels: conv1 direct, conv2 to memory (ReLU'd), conv3 reduced on the fly."""

    group = 4

    def __init__(self, folded: Folded, threads: int | None, m2: int, m3: int):
        from alsnet.engine.winograd import transform_weight

        super().__init__(folded)
        self.m2, self.m3 = m2, m3
        self.w1 = folded.w1[:, 0, :].T.contiguous()              # (11, 32)
        self.U2 = transform_weight(folded.w2, m2)
        self.U3 = transform_weight(folded.w3, m3)
        self._h1 = self._h2 = None

    def maxmin(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from alsnet.engine import winograd as fc

        d = self.f.dilations
        # h1 and h2 are kept for the next group of the same shape (no fresh pages per call)
        h1, _ = fc.conv1(x.contiguous(), self.w1, self.f.b1, relu=True, dest=self._h1)
        h2 = fc.wino_conv(h1, self.U2, self.f.b2, self.m2, d[1], relu=True, cheap_input=True, dest=self._h2)["out"]
        self._h1, self._h2 = h1, h2
        mm = fc.wino_conv(h2, self.U3, self.f.b3, self.m3, d[2], out=False, maxmin=True, argmax=False,
                           cheap_input=True)["maxmin"]
        return mm[:, 0], mm[:, 1]


class _Graph:
    """A torch module run on batches (bf16 autocast, torch.compile)."""

    group = 16

    def __init__(self, module: torch.nn.Module, autocast: bool = False):
        self.module, self.autocast = module, autocast

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.group):
                xb = x[i:i + self.group, None, :]
                if self.autocast:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        outs.append(self.module(xb).float())
                else:
                    outs.append(self.module(xb))
        return torch.cat(outs)


class _Onnx:
    """The graph ``alsnet export`` writes (:func:`alsnet.engine.onnx.onnx_bytes`), through ONNX Runtime.

    ``"onnx"`` names this one graph wherever a backend is chosen (``train --backend``,
    ``predict --backend``); ``"int8"`` is the same graph with dynamically quantised weights.
    """

    def __init__(self, model: ALSNet, threads: int | None, int8: bool = False):
        from alsnet.engine.onnx import OnnxEngine, onnx_bytes, session

        if not int8:
            self.engine = OnnxEngine(model, threads=threads)
            return
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
            with open(src, "wb") as fh:
                fh.write(onnx_bytes(model, 1.0))
            quantize_dynamic(src, dst, weight_type=QuantType.QUInt8, op_types_to_quantize=["Conv", "MatMul", "Gemm"])
            with open(dst, "rb") as fh:
                self.engine = OnnxEngine.from_session(session(fh.read(), threads))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.engine.logits(x.numpy()))


def _make(name: str, model: ALSNet, threads: int | None):
    if name == "eager":
        return _Eager(model, threads)
    if name in ("onnx", "int8"):
        if not _onnx_ok():
            raise AlsnetError(f"backend {name!r} needs onnx and onnxruntime")
        return _Onnx(model, threads, int8=name == "int8")
    folded = fold(model)
    if name == "folded":
        return _Folded(folded, threads)
    if name in ("fused", "winograd"):
        if not _kernels_ok():
            from alsnet.engine.kernels import error

            raise AlsnetError(f"backend {name!r} needs the C++ kernels, which are unavailable: {error()}")
        return _Kernels(folded, threads, *WINOGRAD_M[name])
    if name == "bf16":
        return _Graph(FoldedALSNet(folded).eval(), autocast=True)
    if name == "compiled":
        net = FoldedALSNet(folded).eval()
        return _Graph(torch.compile(net, dynamic=True))
    raise AlsnetError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")


def resolve(backend: str) -> str:
    """The backend ``"auto"`` stands for here (others unchanged)."""
    if backend == "auto":
        return next(b for b in AUTO_ORDER if b in ("folded", "eager") or _kernels_ok())
    return backend


def describe(backend: str = "auto", fast_training: bool = True) -> dict:
    """What computes a run here, for its config and model cards.

    ``inference``: the engine :class:`InferenceEngine` ``(model, backend)`` would run
    (``"winograd-avx512"``); ``training_step``: ``"fast-<isa>"`` for :func:`train_forward`
    on the kernels, else ``"eager"``; ``kernels``: the instruction set of the C++ kernels or
    ``None``, with ``kernels_unavailable`` saying why; ``tiles``: the Winograd output tiles
    (conv2, conv3) of whichever of the two runs on the kernels (the training step's per pass).
    """
    from alsnet.engine import kernels
    from alsnet.engine.train_step import TILES

    isa = kernels.ensure()
    name = resolve(backend)
    out = {"inference": backend_name(name),
           "training_step": f"fast-{isa}" if fast_training and isa else "eager", "kernels": isa}
    tiles = {}
    if isa and name in WINOGRAD_M:
        tiles["inference"] = list(WINOGRAD_M[name])
    if isa and fast_training:
        tiles["training_step"] = {k: list(v) for k, v in TILES.items()}
    if tiles:
        out["tiles"] = tiles
    if isa is None:
        out["kernels_unavailable"] = kernels.error()
    return out


def backend_name(backend: str) -> str:
    """What runs for ``backend``: the kernel backends carry their build (``"winograd-avx2"``)."""
    if backend in WINOGRAD_M:
        from alsnet.engine.kernels import ensure

        return f"{backend}-{ensure()}"
    return backend


class InferenceEngine:
    """Eval-mode ALSNet scoring through one backend (see the module notes).

    Parameters
    ----------
    model : ALSNet
        The network; its eval-mode behaviour (BatchNorm running statistics) is what is
        computed, whatever mode it is in. Its weights are copied when the engine is built.
    backend : str
        ``"auto"`` or one of :data:`BACKENDS`.
    threads : int, optional
        Threads for PyTorch, the kernels and ONNX Runtime (PyTorch's setting is global).
    """

    def __init__(self, model: ALSNet, backend: str = "auto", threads: int | None = None):
        if not isinstance(model, ALSNet):
            raise AlsnetError(f"InferenceEngine needs an ALSNet, got {type(model).__name__}")
        set_threads(threads)
        self.n_outputs = model.n_outputs
        backend = resolve(backend)
        self.backend = backend
        self._run = _make(backend, model, threads)
        self.name = backend_name(backend)

    def logits(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Logits ``(N, n_outputs)`` float32 of ``x``: ``(N, T)`` or ``(N, 1, T)`` µV, ``T >= 45``."""
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach()
        if t.ndim == 3:
            if t.shape[1] != 1:
                raise AlsnetError(f"expected one input channel, got shape {tuple(t.shape)}")
            t = t[:, 0, :]
        if t.ndim != 2:
            raise AlsnetError(f"expected (N, T) or (N, 1, T) windows, got shape {tuple(t.shape)}")
        if t.shape[1] < RECEPTIVE_FIELD:
            raise AlsnetError(f"windows must have at least {RECEPTIVE_FIELD} samples, got {t.shape[1]}")
        t = t.to(torch.float32).contiguous()
        if t.shape[0] == 0:
            return np.zeros((0, self.n_outputs), np.float32)
        return np.ascontiguousarray(self._run(t).detach().numpy(), dtype=np.float32)

    def __repr__(self) -> str:
        return f"InferenceEngine(backend={self.name!r}, threads={torch.get_num_threads()})"


def train_forward(model: ALSNet, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` (same logits, BatchNorm updates and gradients), computed faster.

    Falls back to ``model(x)`` where the fast path does not apply (see
    :func:`alsnet.engine.train_step.applies`).
    """
    from alsnet.engine.train_step import applies, fast_forward

    if not applies(model, x):
        return model(x)
    return fast_forward(model, x)


__all__ = ["InferenceEngine", "available_backends", "backend_name", "describe", "keep_freed_memory", "resolve",
           "set_threads", "train_forward", "BACKENDS", "FAITHFUL", "AUTO_ORDER"]
