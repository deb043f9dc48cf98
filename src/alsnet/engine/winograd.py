"""Fused CPU kernels for ALSNet's dilated convolutions: Winograd filtering in (N, T, C).

Why: the reference ``nn.Conv1d`` path spends ~3.6 GFLOP per 1-s window, almost all in
conv2 (k=9, dilation 2) and conv3 (k=7, dilation 3), and then makes several passes over
100-MB activations for ReLU, BatchNorm and the max pool. A 2-core AVX2 machine cannot
go much faster with the same arithmetic (MKL sgemm peaks near 170 GFLOP/s), so this
module uses *less* arithmetic, exactly: Winograd minimal filtering F(m, r) computes m
outputs of an r-tap correlation with alpha = m + r - 1 multiplies instead of m*r
(per input/output channel pair; a dilation-d convolution is d interleaved undilated
ones, so tiles simply step by d). F(6, 7) for conv3 and F(4, 9) for conv2 cut the
multiplies 3.5x and 3x; the transforms are done on L2-sized chunks of time, vectorised
over channels, around MKL sgemm calls, in the C++ file ``csrc/alsnet_kernels.cpp``.

The interpolation points were chosen by measuring the float32 error on ReLU-like data
(largest error / largest output about 6e-6 for F(6, 7) and 5e-6 for F(4, 9), against
1e-6 for a direct float32 convolution); ``tests/test_fast.py`` and the parity check of
``benchmarks/bench.py`` hold the whole network to that.

The library is compiled on first use with the system C++ compiler (about 10-20 s) and
cached under ``$ALSNET_CACHE_DIR/kernels`` (default ``~/.cache/alsnet/kernels``), keyed
by the source, the flags and the torch version. Without a compiler, or on a CPU without
AVX2/FMA, :func:`kernels` returns ``None`` and callers use plain PyTorch.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import torch

from alsnet.files import atomic_path, cache_dir

SOURCE = Path(__file__).with_name("csrc") / "alsnet_kernels.cpp"
FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]

# Interpolation points (besides infinity) per (m, r); measured best of ~460 candidate sets.
POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {
    (6, 7): tuple(Fraction(p) for p in ("0", "1", "-1", "3", "-3", "1/3", "-1/3", "3/4", "-3/4", "4/3", "-4/3")),
    (4, 9): tuple(Fraction(p) for p in ("0", "1", "-1", "1/2", "-1/2", "3", "-3", "3/2", "-3/2", "3/4", "-3/4")),
}
_DEFAULT_POINTS = tuple(Fraction(p) for p in ("0", "1", "-1", "1/2", "-1/2", "2", "-2", "1/4", "-1/4",
                                               "4", "-4", "3", "-3", "1/3", "-1/3"))


# --------------------------------------------------------------------------- Winograd algebra

def _vander(points, n: int) -> list[list[Fraction]]:
    rows = [[p ** k for k in range(n)] for p in points]
    rows.append([Fraction(0)] * (n - 1) + [Fraction(1)])  # the point at infinity
    return rows


def _inverse(mat: list[list[Fraction]]) -> list[list[Fraction]]:
    n = len(mat)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(mat)]
    for c in range(n):
        piv = next(r for r in range(c, n) if aug[r][c] != 0)
        aug[c], aug[piv] = aug[piv], aug[c]
        pv = aug[c][c]
        aug[c] = [v / pv for v in aug[c]]
        for r in range(n):
            if r != c and aug[r][c] != 0:
                f = aug[r][c]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[c])]
    return [row[n:] for row in aug]


@functools.cache
def winograd_matrices(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(AT (m, a), G (a, r), BT (a, a))`` in float64 for correlation F(m, r), a = m + r - 1.

    ``y = AT @ ((G @ w) * (BT @ x))`` for ``x`` of length ``a`` and ``y_i = sum_j w_j x_{i+j}``
    (by the transposition principle from the Toom-Cook product of polynomials). ``m = 1``
    gives the direct convolution (identity transforms).
    """
    a = m + r - 1
    if m == 1:
        return (torch.ones(1, r, dtype=torch.float64), torch.eye(r, dtype=torch.float64),
                torch.eye(r, dtype=torch.float64))
    pts = POINTS.get((m, r), _DEFAULT_POINTS[: a - 1])
    if len(pts) != a - 1:
        raise ValueError(f"no interpolation points for F({m}, {r})")
    A = _vander(pts, m)
    G = _vander(pts, r)
    C = _inverse(_vander(pts, a))
    to = lambda rows: torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)  # noqa: E731
    return to(A).T.contiguous(), to(G), to(C).T.contiguous()


def transform_weight(w: torch.Tensor, m: int) -> torch.Tensor:
    """``U (a, Cin, Cout)`` float32 from a Conv1d weight ``(Cout, Cin, r)`` (computed in float64)."""
    _, G, _ = winograd_matrices(m, w.shape[-1])
    with single_thread():
        return torch.einsum("ar,ocr->aco", G, w.detach().double()).float().contiguous()


def weight_grad_from_u(dU: torch.Tensor, m: int, r: int) -> torch.Tensor:
    """Conv1d weight gradient ``(Cout, Cin, r)`` from the gradient of ``U`` ``(a, Cin, Cout)``."""
    _, G, _ = winograd_matrices(m, r)
    with single_thread():
        return torch.einsum("ar,aco->ocr", G, dU.double()).float()


# --------------------------------------------------------------------------- building the library

def _cpu_ok() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    return "avx2" in flags and "fma" in flags


def _cache_dir() -> Path:
    return cache_dir("kernels")


def _build(out: Path) -> None:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler (g++/c++) on PATH")
    lib = Path(torch.__file__).parent / "lib"
    with atomic_path(out, 0o755) as tmp:  # concurrent builders never see a half-written file
        cmd = [cxx, *FLAGS, str(SOURCE), "-o", str(tmp), f"-L{lib}", "-ltorch_cpu", f"-Wl,-rpath,{lib}"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} failed: {res.stderr.strip()[-2000:]}")


class _Loader(ctypes.Structure):
    _fields_ = [("x", ctypes.c_void_p), ("Tx", ctypes.c_int), ("off", ctypes.c_int), ("C", ctypes.c_int),
                ("scale", ctypes.c_void_p), ("shift", ctypes.c_void_p), ("mask", ctypes.c_int)]


class _Fwd(ctypes.Structure):
    _fields_ = [("L", _Loader), ("N", ctypes.c_int), ("Tlog", ctypes.c_int),
                ("U", ctypes.c_void_p), ("A", ctypes.c_int), ("m", ctypes.c_int), ("d", ctypes.c_int),
                ("Cin", ctypes.c_int), ("Cout", ctypes.c_int),
                ("bias", ctypes.c_void_p), ("at", ctypes.c_void_p), ("bt", ctypes.c_void_p),
                ("tiles", ctypes.c_int), ("nth", ctypes.c_int),
                ("out", ctypes.c_void_p), ("relu_out", ctypes.c_int), ("stats", ctypes.c_void_p),
                ("aux", ctypes.c_void_p), ("auxsums", ctypes.c_void_p),
                ("maxmin", ctypes.c_void_p), ("argmm", ctypes.c_void_p), ("paired_in", ctypes.c_int)]


class _Wgrad(ctypes.Structure):
    _fields_ = [("X", _Loader), ("DY", _Loader), ("N", ctypes.c_int), ("Tlog", ctypes.c_int),
                ("A", ctypes.c_int), ("m", ctypes.c_int), ("d", ctypes.c_int),
                ("Cin", ctypes.c_int), ("Cout", ctypes.c_int),
                ("at", ctypes.c_void_p), ("bt", ctypes.c_void_p), ("tiles", ctypes.c_int), ("nth", ctypes.c_int),
                ("dU", ctypes.c_void_p), ("dbias", ctypes.c_void_p)]


_ABI = 4
_lib = None
_lib_error: str | None = None


def kernels():
    """The loaded kernel library, building it on first use; ``None`` where it cannot be built."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    if os.environ.get("ALSNET_NO_KERNELS"):
        _lib_error = "disabled by ALSNET_NO_KERNELS"
        return None
    try:
        if not _cpu_ok():
            raise RuntimeError("CPU lacks AVX2/FMA")
        if not SOURCE.is_file():
            raise RuntimeError(f"kernel source {SOURCE} missing")
        key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()
                             + torch.__version__.encode()).hexdigest()[:16]
        path = _cache_dir() / f"alsnet_kernels-{key}.so"
        if not path.is_file():
            _build(path)
        lib = ctypes.CDLL(str(path))
        if lib.alsnet_abi_version() != _ABI:
            raise RuntimeError("stale kernel library")
        P = ctypes.c_void_p
        lib.alsnet_wino_fwd.argtypes = [ctypes.POINTER(_Fwd)]
        lib.alsnet_wino_wgrad.argtypes = [ctypes.POINTER(_Wgrad)]
        lib.alsnet_conv1.argtypes = [P, ctypes.c_int, ctypes.c_int, P, ctypes.c_int, ctypes.c_int, P,
                                     P, ctypes.c_int, P, ctypes.c_int]
        lib.alsnet_bn_relu_bwd.argtypes = [P, P, ctypes.c_long, ctypes.c_int, P, P, P, ctypes.c_int]
        I = ctypes.c_int  # noqa: E741
        lib.alsnet_candidates.argtypes = [P, I, I, I, P, P, I, I, P, P, I]
        _lib = lib
    except Exception as e:  # no compiler, no AVX2, read-only cache...: plain PyTorch instead
        _lib_error = f"{type(e).__name__}: {e}"
    return _lib


def kernels_error() -> str | None:
    """Why :func:`kernels` returned ``None`` (``None`` if it loaded or was not tried)."""
    return _lib_error


# --------------------------------------------------------------------------- wrappers

def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what}: kernel refused its arguments (code {code})")


def threads() -> int:
    return max(1, torch.get_num_threads())


class single_thread:
    """Run small tensor ops on one thread: on a busy 2-core machine a parallel region
    around a 1-ms op can wait a whole scheduler time slice for its second thread."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.n != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.n != 1:
            torch.set_num_threads(self.n)
        return False


def conv1(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *, relu: bool = True,
          stats: bool = False, dest: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """First layer: ``x (N, T)`` → ``(N, T-K+1, C)``; ``w`` is ``(K, C)``. Optional sums of relu."""
    lib = kernels()
    N, T = x.shape
    K, C = w.shape
    nth = threads()
    out = _dest(dest, (N, max(T - K + 1, 0), C))
    st = torch.zeros(nth, 2, C, dtype=torch.float64) if stats else None
    _check(lib.alsnet_conv1(x.data_ptr(), N, T, w.data_ptr(), K, C, b.data_ptr(), out.data_ptr(),
                            int(relu), _ptr(st), nth), "conv1")
    return out, (st.sum(0) if stats else None)


def _dest(dest: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """``dest`` when it is a float32 tensor of ``shape`` (reused: a fresh 25-MB output costs
    thousands of page faults per call), else a new tensor."""
    if dest is not None and tuple(dest.shape) == shape and dest.dtype == torch.float32 and dest.is_contiguous():
        return dest
    return torch.empty(shape)


def _loader(x: torch.Tensor, off: int = 0, scale=None, shift=None, mask: int = 0) -> _Loader:
    return _Loader(x.data_ptr(), x.shape[1], off, x.shape[2], _ptr(scale), _ptr(shift), int(mask))


def wino_conv(x: torch.Tensor, U: torch.Tensor, bias: torch.Tensor, m: int, d: int, *,
              pad: int = 0, scale=None, shift=None, mask: int = 0,
              out: bool = True, relu: bool = False, stats: bool = False, aux: torch.Tensor | None = None,
              maxmin: bool = False, argmax: bool = True, cheap_input: bool = False, tiles: int = 96,
              dest: torch.Tensor | None = None) -> dict:
    """Dilated correlation of ``x (N, T, Cin)`` (time-major) by Winograd F(m, r).

    The input seen by the filter is ``x`` padded with ``pad`` zero rows on both sides,
    each value mapped to ``scale*v + shift`` (``mask=1``: 0 where ``v <= 0``; ``mask=2``:
    ``scale*relu(v) + shift``). Returns a dict with what was asked: ``out (N, To, Cout)``
    (ReLU'd if ``relu``), ``stats (2, Cout)`` float64 sums of relu(y) and relu(y)^2,
    ``auxsums (2, Cout)`` sums of y and y*relu(aux), and
    ``maxmin (N, 2, Cout)`` / ``argmm`` (int32) the largest and smallest y over time
    (``argmax=False``: no ``argmm``; with nothing else asked, the extremes are then
    reduced per tile in registers, the inference path). ``cheap_input``: the input
    transform in half-sums of symmetric points (a third fewer multiply-adds, a little more
    rounding: enough to push conv1's bias gradient past the float32 tolerance of
    tests/test_fast.py, so inference only).
    """
    lib = kernels()
    N, Tx, Cin = x.shape
    A, _, Cout = U.shape
    AT, _, BT = winograd_matrices(m, A - m + 1)
    r = A - m + 1
    Tlog = Tx + 2 * pad
    To = Tlog - (r - 1) * d
    nth = threads()
    at32, bt32 = AT.float().contiguous(), BT.float().contiguous()
    res: dict = {}
    o = _dest(dest, (N, To, Cout)) if out else None
    st = torch.zeros(nth, 2, Cout, dtype=torch.float64) if stats else None
    axs = torch.zeros(nth, 2, Cout, dtype=torch.float64) if aux is not None else None
    mm = torch.empty(N, 2, Cout) if maxmin else None
    am = torch.empty(N, 2, Cout, dtype=torch.int32) if maxmin and argmax else None
    p = _Fwd(_loader(x, pad, scale, shift, mask), N, Tlog, U.data_ptr(), A, m, d, Cin, Cout,
             bias.data_ptr(), at32.data_ptr(), bt32.data_ptr(), tiles, nth,
             _ptr(o), int(relu), _ptr(st), _ptr(aux), _ptr(axs), _ptr(mm), _ptr(am), int(cheap_input))
    _check(lib.alsnet_wino_fwd(ctypes.byref(p)), "wino_fwd")
    if out:
        res["out"] = o
    if stats:
        res["stats"] = st.sum(0)
    if aux is not None:
        res["auxsums"] = axs.sum(0)
    if maxmin:
        res["maxmin"] = mm
        if argmax:
            res["argmm"] = am
    return res


def wino_wgrad(x: torch.Tensor, dy: torch.Tensor, m: int, r: int, d: int, *,
               xscale=None, xshift=None, xmask: int = 0, dyscale=None, dyshift=None, dymask: int = 0,
               tiles: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of a dilated correlation's weight (as ``U (a, Cin, Cout)``) and bias.

    ``x (N, T, Cin)`` is the layer input (mapped by ``xscale``/``xshift``/``xmask`` as in
    :func:`wino_conv`), ``dy (N, To, Cout)``
    the output gradient (mapped by ``dyscale``/``dyshift``, zero where ``dymask`` and
    ``dy <= 0``: lets the caller pass the pre-activation and build the gradient on the fly).
    """
    lib = kernels()
    N, Tx, Cin = x.shape
    Cout = dy.shape[2]
    A = m + r - 1
    AT, _, BT = winograd_matrices(m, r)
    nth = threads()
    at32, bt32 = AT.float().contiguous(), BT.float().contiguous()
    dU = torch.empty(nth, A, Cin, Cout)
    db = torch.zeros(nth, Cout, dtype=torch.float64)
    p = _Wgrad(_loader(x, 0, xscale, xshift, xmask), _loader(dy, 0, dyscale, dyshift, dymask),
               N, Tx, A, m, d, Cin, Cout, at32.data_ptr(), bt32.data_ptr(), tiles, nth,
               dU.data_ptr(), db.data_ptr())
    _check(lib.alsnet_wino_wgrad(ctypes.byref(p)), "wino_wgrad")
    return dU.sum(0), db.sum(0)


def bn_relu_bwd_(g: torch.Tensor, r: torch.Tensor, a: torch.Tensor, c1: torch.Tensor,
                 c2: torch.Tensor) -> torch.Tensor:
    """In place ``g = (r > 0) * (a*g + c1 + c2*r)`` over ``(..., C)`` tensors; returns ``g``."""
    lib = kernels()
    C = g.shape[-1]
    f = lambda v: v.float().contiguous()  # noqa: E731
    a, c1, c2 = f(a), f(c1), f(c2)
    _check(lib.alsnet_bn_relu_bwd(g.data_ptr(), r.data_ptr(), g.numel() // C, C, a.data_ptr(),
                                  c1.data_ptr(), c2.data_ptr(), threads()), "bn_relu_bwd")
    return g


def candidates(z: torch.Tensor, thr: torch.Tensor, k: int, sgn: torch.Tensor | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Times ``t`` with ``sgn[c]*z[n, t, c] >= thr[n, c]`` (or ``|z| < thr`` when ``sgn`` is None).

    Returns ``(idx (N, C, k) int32, count (N, C))``: only the first ``k`` times per
    ``(n, c)`` are stored; ``count`` may exceed ``k``.
    """
    lib = kernels()
    N, T, C = z.shape
    idx = torch.zeros(N, C, k, dtype=torch.int32)
    cnt = torch.zeros(N, C, dtype=torch.int32)
    thr = thr.float().expand(N, C).contiguous()
    near = sgn is None
    sgn = torch.ones(C) if near else sgn.float().contiguous()
    _check(lib.alsnet_candidates(z.data_ptr(), N, T, C, thr.data_ptr(), sgn.data_ptr(), k, int(near),
                                 idx.data_ptr(), cnt.data_ptr(), threads()), "candidates")
    return idx, cnt


__all__ = ["winograd_matrices", "transform_weight", "weight_grad_from_u", "kernels", "kernels_error",
           "conv1", "wino_conv", "wino_wgrad", "bn_relu_bwd_", "candidates", "single_thread", "threads", "POINTS"]
