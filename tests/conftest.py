"""Shared fixtures: the real EMGLab N2001 archive (skipped with a reason when absent)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "emglab-n2001-bb-dev.tar.xz"


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory) -> Path:
    """Folder holding the unpacked N2001 records (``.../N2001``)."""
    unpacked = REPO / "data" / "N2001"
    if unpacked.is_dir() and len(list(unpacked.glob("*.hea"))) == 409:
        return unpacked
    if not ARCHIVE.is_file():
        pytest.skip(f"real EMGLab N2001 data not found at {ARCHIVE}")
    out = tmp_path_factory.mktemp("n2001")
    with tarfile.open(ARCHIVE, "r:xz") as tar:
        tar.extractall(out, filter="data")
    return out / "N2001"
