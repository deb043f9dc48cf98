"""alsnet's C++ kernels as a PyTorch extension: detected, built once per machine, checked, loaded.

The sources in ``csrc/`` register their operators with ``TORCH_LIBRARY`` as
``torch.ops.alsnet.*`` (tensors checked by ATen, threads from PyTorch's intra-op pool) and
are compiled by :func:`torch.utils.cpp_extension.load` for one instruction set, chosen at
run time (:func:`detect_isa`): AVX-512 (F/BW/DQ/VL) where the CPU and PyTorch have it, else
AVX2 with FMA. ``ALSNET_KERNELS`` overrides the choice: ``0`` disables the kernels,
``avx2`` or ``avx512`` asks for that build (if the CPU can run it).

Each build lives in its own folder under :func:`cache_root` (``$ALSNET_CACHE_DIR/kernels``,
else ``$TORCH_EXTENSIONS_DIR/alsnet``, else ``~/.cache/alsnet/kernels``), named by the
instruction set, the torch version and a digest of the sources and flags, with a
``manifest.json`` recording those and the SHA-256 of the library. A library is opened only
when its manifest matches this machine, this torch and these sources and its bytes match
the digest: a truncated, foreign or half-written build is deleted and rebuilt (under a
lock, so concurrent processes build once), never loaded; object files that the manifest
vouches for are kept, so a damaged library alone is relinked in seconds. Without a compiler or on a CPU
with neither instruction set, one warning names the slower plain-PyTorch path used instead.

``python -m alsnet.engine.kernels`` builds (or checks) the library now and says which.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from alsnet.errors import AlsnetError
from alsnet.files import atomic_write_text, cache_dir, sha256_file

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("ops.cpp", "winograd.cpp", "pointwise.cpp")
HEADERS = ("kernels.h",)
#: Must equal ``kAbi`` in csrc/ops.cpp (the operator schemas).
ABI = 9
COMMON_FLAGS = ("-O3", "-fopenmp")
#: Compiler flags and the /proc/cpuinfo flags each build needs, fastest first.
ISA = {
    "avx512": (("-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma"),
               {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"}),
    "avx2": (("-mavx2", "-mfma"), {"avx2", "fma"}),
}
#: torch.backends.cpu.get_cpu_capability() values that allow each build (OS support included).
_TORCH_CAPS = {"avx512": {"AVX512"}, "avx2": {"AVX2", "AVX512"}}
#: What runs when the kernels are unavailable (named in the warning).
SLOWER_PATH = "plain PyTorch (inference backend 'folded', eager training step)"

_state: dict = {}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (``None`` where there is none to read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def detect_isa() -> str | None:
    """The fastest build this CPU runs: ``"avx512"``, ``"avx2"`` or ``None``.

    Both the CPU's flags and PyTorch's own capability must allow it (PyTorch's reflects OS
    support and ``ATEN_CPU_CAPABILITY``); without /proc/cpuinfo PyTorch's alone decides.
    """
    flags = cpu_flags()
    cap = torch.backends.cpu.get_cpu_capability()
    for isa, (_, need) in ISA.items():
        if cap in _TORCH_CAPS[isa] and (flags is None or need <= flags):
            return isa
    return None


def requested_isa() -> str | None:
    """The build ``ALSNET_KERNELS`` asks for here (``None``: disabled or unsupported).

    Raises :class:`AlsnetError` for a value that is not ``0``, ``1``, ``auto``, ``avx2`` or ``avx512``.
    """
    want = os.environ.get("ALSNET_KERNELS", "auto").strip().lower()
    if want in ("0", "off", "false", "no"):
        return None
    detected = detect_isa()
    if want in ("", "1", "auto", "on", "true", "yes"):
        return detected
    if want not in ISA:
        raise AlsnetError(f"ALSNET_KERNELS={want!r}: expected 0, auto, {' or '.join(ISA)}")
    order = list(ISA)
    if detected is None or order.index(want) < order.index(detected):
        raise AlsnetError(f"ALSNET_KERNELS={want}: this CPU cannot run the {want} build (best: {detected})")
    return want


def cache_root() -> Path:
    """Where builds live: ``$ALSNET_CACHE_DIR/kernels``, else ``$TORCH_EXTENSIONS_DIR/alsnet``, else alsnet's cache."""
    if not os.environ.get("ALSNET_CACHE_DIR") and os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "alsnet"
    return cache_dir("kernels")


def source_digest(isa: str) -> str:
    """SHA-256 of the sources, headers, flags and ABI of one build."""
    h = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        h.update(name.encode() + b"\0" + (CSRC / name).read_bytes() + b"\0")
    h.update(" ".join((*COMMON_FLAGS, *ISA[isa][0], f"abi={ABI}")).encode())
    return h.hexdigest()


def expected_manifest(isa: str) -> dict:
    """What a build for ``isa`` on this machine and torch must record (the library digest aside)."""
    return {"abi": ABI, "isa": isa, "torch": torch.__version__, "source_sha256": source_digest(isa),
            "flags": [*COMMON_FLAGS, *ISA[isa][0]], "library": f"alsnet_kernels_{isa}.so"}


def build_dir(isa: str) -> Path:
    """The folder of the ``isa`` build for this torch and these sources."""
    return cache_root() / f"{isa}-torch{torch.__version__}-{source_digest(isa)[:16]}"


def check_build(folder: Path, isa: str) -> str | None:
    """Why the build in ``folder`` must not be loaded (``None``: it is this machine's, intact)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        return "no manifest"
    except (OSError, ValueError) as e:
        return f"unreadable manifest ({type(e).__name__})"
    if not isinstance(manifest, dict):
        return "malformed manifest"
    for key, want in expected_manifest(isa).items():
        if manifest.get(key) != want:
            return f"built for {key} {manifest.get(key)!r}, need {want!r}"
    lib = folder / manifest["library"]
    if not lib.is_file():
        return f"{lib.name} missing"
    if sha256_file(lib) != manifest.get("library_sha256"):
        return f"{lib.name} does not match its recorded digest (truncated or altered)"
    return None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock beside ``folder`` (one builder at a time; others wait, then load)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ninja_on_path() -> None:
    """Put the ``ninja`` that pip installs with alsnet (a dependency) on PATH for the build."""
    try:
        import ninja
    except ImportError:  # a third-party package: a system ninja may still be there
        return
    bin_dir = getattr(ninja, "BIN_DIR", None)
    if bin_dir and bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _compiler_problem() -> str | None:
    from torch.utils.cpp_extension import is_ninja_available

    _ninja_on_path()
    cxx = os.environ.get("CXX", "c++")
    if not shutil.which(cxx):
        return f"no C++ compiler ({cxx!r} not found; set CXX)"
    if not is_ninja_available():
        return "ninja not found (pip install ninja)"
    return None


def _clear(folder: Path, isa: str) -> None:
    """Make ``folder`` ready for a rebuild: the library and manifest go; the object files
    stay only if the manifest is this build's and vouches for every one (a damaged library
    is then relinked in seconds), else everything goes."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        objects = man.get("objects") or {}
        keep = (all(man.get(k) == v for k, v in expected_manifest(isa).items()) and bool(objects)
                and all(sha256_file(folder / n) == d for n, d in objects.items()))
    except (OSError, ValueError, AttributeError):
        keep = False
    if keep:
        for name in (expected_manifest(isa)["library"], "manifest.json"):
            (folder / name).unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _build(folder: Path, isa: str) -> None:
    """Compile into an emptied ``folder`` (loading the result) and record its manifest."""
    from torch.utils.cpp_extension import load

    problem = _compiler_problem()
    if problem:
        raise RuntimeError(problem)
    _clear(folder, isa)
    print(f"alsnet: building the C++ kernels ({isa}) in {folder}, once per machine (about a minute)",
          file=sys.stderr, flush=True)
    man = expected_manifest(isa)
    load(man["library"][:-3], [str(CSRC / s) for s in SOURCES], extra_cflags=list(man["flags"]),
         extra_ldflags=["-fopenmp"], build_directory=str(folder), is_python_module=False, verbose=False)
    man["library_sha256"] = sha256_file(folder / man["library"])
    man["objects"] = {o.name: sha256_file(o) for o in sorted(folder.glob("*.o"))}
    atomic_write_text(folder / "manifest.json", json.dumps(man, indent=1) + "\n")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _load(isa: str) -> None:
    folder = build_dir(isa)
    with _locked(folder):
        reason = check_build(folder, isa)
        if reason is None:
            torch.ops.load_library(str(folder / expected_manifest(isa)["library"]))
        else:
            _state["rebuilt_because"] = reason
            try:
                _build(folder, isa)
            except Exception as e:
                if reason == "no manifest":  # nothing was cached: just the build's own error
                    raise
                raise RuntimeError(f"cached build refused ({reason}); rebuilding failed: {_first_line(e)}") from e
    if torch.ops.alsnet.abi_version() != ABI or torch.ops.alsnet.isa() != isa:
        raise RuntimeError(f"the loaded library is ABI {torch.ops.alsnet.abi_version()} / "
                           f"{torch.ops.alsnet.isa()}, expected {ABI} / {isa}")


def ensure() -> str | None:
    """Build or load the kernels once per process; the instruction set in use, or ``None``.

    ``None`` (with one warning naming the slower path, unless ``ALSNET_KERNELS=0`` asked
    for it) where they cannot be used.
    """
    if "isa" in _state:
        return _state["isa"]
    isa = requested_isa()
    _state["isa"], _state["error"] = None, None
    if isa is None:
        disabled = os.environ.get("ALSNET_KERNELS", "").strip().lower() in ("0", "off", "false", "no")
        _state["error"] = "disabled by ALSNET_KERNELS=0" if disabled else "CPU has neither AVX-512 nor AVX2/FMA"
    else:
        try:
            _load(isa)
            _state["isa"] = isa
        except Exception as e:  # a failed build: the slower path, said once
            _state["error"] = _first_line(e)
    if _state["isa"] is None and not _state["error"].startswith("disabled"):
        warnings.warn(f"alsnet C++ kernels unavailable ({_state['error']}); using the slower {SLOWER_PATH}",
                      RuntimeWarning, stacklevel=3)
    return _state["isa"]


def error() -> str | None:
    """Why :func:`ensure` returned ``None`` (``None`` if the kernels loaded or were not tried)."""
    return _state.get("error")


def _main() -> int:
    isa = ensure()
    if isa is None:
        print(f"alsnet kernels: unavailable: {error()}", file=sys.stderr)
        # a compiler is here but the build failed: that is a bug, not a slower machine
        return 1 if requested_isa() and _compiler_problem() is None else 0
    print(f"alsnet kernels: {isa} build in {build_dir(isa)}")
    return 0


__all__ = ["ABI", "ISA", "SLOWER_PATH", "build_dir", "cache_root", "check_build", "cpu_flags", "detect_isa",
           "ensure", "error", "expected_manifest", "requested_isa", "source_digest"]


if __name__ == "__main__":
    sys.exit(_main())
