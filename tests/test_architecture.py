"""The package's layers: imports flow one way, from the command line down to the data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "alsnet"

#: Each subpackage may import only from its own layer and the layers before it
#: (docs/architecture.md). ``errors`` and ``files`` are the foundation every layer uses.
LAYERS = ["errors", "files", "data", "model", "engine", "evaluation", "training", "diagnosis",
          "reporting", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "alsnet" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every alsnet import in a file, inside functions too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "alsnet":
                out += [(node.lineno, f"alsnet.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if len(rel.parts) == 1:
            continue  # alsnet/__init__.py (the lazy public API) and __main__.py sit above every layer
        yield rel.parts[0], path


@pytest.mark.parametrize("layer,path", list(_modules()), ids=lambda v: str(v).split("alsnet/")[-1])
def test_a_module_imports_only_its_own_layer_or_those_below(layer, path):
    assert layer in RANK, f"{path}: subpackage {layer!r} is not a declared layer"
    bad = [f"line {n}: {m}" for n, m in _imports(path)
           if (target := _layer(m)) is not None and target in RANK and RANK[target] > RANK[layer]]
    assert not bad, f"{path.relative_to(SRC)} ({layer}) imports a higher layer: {bad}"


def test_the_declared_layers_are_the_subpackages_there_are():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages | modules == set(LAYERS)


def test_the_public_api_is_importable_from_the_top_level():
    import alsnet

    for name in alsnet.__all__:
        assert getattr(alsnet, name) is not None, name
    assert callable(alsnet.predict) and alsnet.ALSNet.__name__ == "ALSNet"
