"""Getting EMG data: unpack the shared N2001 archive, fetch PhysioNet records, check digests.

Nothing here runs during the tests except against a local ``file://`` folder; no function
downloads anything unless called. Every file is checked against a SHA-256 digest before
it is kept, and written atomically (a temporary file renamed into place), so an interrupted
or tampered download never leaves a file that looks complete.

PhysioNet's URL scheme is ``https://physionet.org/files/PROJECT/VERSION/FILE``; every
published project version has a ``SHA256SUMS.txt`` at its root, which
:func:`download_physionet` fetches first and checks each file against. The EMGLab site
(http://www.emglab.net) offers the full N2001 database (with its vastus medialis records
and the three held-out subjects) as web downloads; fetch those by hand, or with
:func:`fetch` and a digest you trust.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from alsnet.errors import AlsnetError
from alsnet.files import sha256_file

PHYSIONET_BASE = "https://physionet.org/files"
#: PhysioNet "Examples of Electromyograms": three needle-EMG records (healthy, myopathy,
#: neuropathy), 4 kHz, WFDB in mV: the reader's non-N2001 path (resampled to the model rate).
EMGDB = {"project": "emgdb", "version": "1.0.0"}
N2001_ARCHIVE = "emglab-n2001-bb-dev.tar.xz"




def parse_sha256sums(text: str) -> dict[str, str]:
    """``{file name: digest}`` from ``sha256sum`` output (``DIGEST  NAME`` or ``DIGEST *NAME``)."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


def physionet_url(project: str, version: str, filename: str = "", base: str = PHYSIONET_BASE) -> str:
    """``BASE/PROJECT/VERSION/FILE`` (PhysioNet's layout for published data)."""
    return "/".join([base.rstrip("/"), project, version, filename.lstrip("/")])


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, check its SHA-256 when given, and rename into place."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if sha256 is not None and h.hexdigest() != sha256.lower():
            raise AlsnetError(f"SHA-256 mismatch for {url}: got {h.hexdigest()}, expected "
                              f"{sha256.lower()} (corrupt or changed download; nothing kept)", dest)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AlsnetError(f"cannot download {url} ({e})", dest) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download_physionet(dest: str | os.PathLike, project: str = EMGDB["project"],
                       version: str = EMGDB["version"], files: list[str] | None = None,
                       base: str = PHYSIONET_BASE) -> list[Path]:
    """Fetch a PhysioNet project's files (all of ``SHA256SUMS.txt``, or ``files``), checked.

    A file already present with the right digest is not fetched again.
    """
    dest = Path(dest)
    sums_path = fetch(physionet_url(project, version, "SHA256SUMS.txt", base), dest / "SHA256SUMS.txt")
    sums = parse_sha256sums(sums_path.read_text(encoding="utf-8"))
    wanted = files if files is not None else sorted(sums)
    out = []
    for name in wanted:
        if name not in sums:
            raise AlsnetError(f"{name!r} is not listed in {project}/{version}/SHA256SUMS.txt", sums_path)
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise AlsnetError(f"refusing a file name outside the data folder: {name!r}", sums_path)
        target = dest / name
        if not (target.is_file() and sha256_file(target) == sums[name]):
            fetch(physionet_url(project, version, name, base), target, sha256=sums[name])
        out.append(target)
    return out


def unpack_n2001(archive: str | os.PathLike, dest: str | os.PathLike, check: bool = True) -> Path:
    """Check the shared N2001 archive against the ``SHA256SUMS`` beside it and unpack it.

    Returns the folder of records (``DEST/N2001``). Members are extracted with tarfile's
    ``data`` filter, which refuses absolute paths, ``..`` and links out of ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise AlsnetError("archive not found", archive)
    sums_file = archive.parent / "SHA256SUMS"
    if check:
        if not sums_file.is_file():
            raise AlsnetError("no SHA256SUMS beside the archive to check it against "
                              "(check=False skips the check)", archive)
        want = parse_sha256sums(sums_file.read_text(encoding="utf-8")).get(archive.name)
        if want is None:
            raise AlsnetError(f"{archive.name} is not listed in {sums_file}", archive)
        if sha256_file(archive) != want:
            raise AlsnetError("SHA-256 does not match SHA256SUMS (corrupt or different archive)",
                              archive)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AlsnetError(f"cannot unpack ({type(e).__name__}: {e})", archive) from None
    return dest / "N2001"


def main(argv: list[str] | None = None) -> int:
    """``python -m alsnet.data.download {n2001 ARCHIVE DEST | physionet DEST [PROJECT VERSION]}``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) == 3 and args[0] == "n2001":
            print(unpack_n2001(args[1], args[2]))
        elif len(args) in (2, 4) and args[0] == "physionet":
            for p in download_physionet(args[1], *args[2:4]):
                print(p)
        else:
            print(main.__doc__, file=sys.stderr)
            return 2
    except AlsnetError as e:
        print(f"alsnet.data.download: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["fetch", "download_physionet", "unpack_n2001", "parse_sha256sums", "physionet_url",
           "sha256_file", "EMGDB", "PHYSIONET_BASE"]
