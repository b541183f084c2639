"""The house's layers, as pyproject.toml's [tool.cim] declares them, hold for every import of
every module (module-level or inside a function), and no modules import each other in a loop."""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB_FRAMEWORKS = {"fastapi", "starlette", "uvicorn"}


@cache
def declared() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cim"]


def layer_of() -> dict[str, int]:
    layers = declared()["layers"]
    assert isinstance(layers, list)
    return {package: n for n, names in enumerate(layers) for package in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of every declared package, by dotted name."""
    found = {}
    for package in layer_of():
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement of a module, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod when there is one
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((node.lineno, sub if sub in modules() else base))
    return out


def test_every_package_of_the_wheel_has_a_layer() -> None:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    assert sorted(wheel) == sorted(layer_of())
    assert set(declared()["web"]) <= set(layer_of())  # type: ignore[arg-type]


def test_imports_follow_the_layers() -> None:
    layers = layer_of()
    wrong = []
    for name, path in modules().items():
        own = name.split(".")[0]
        for line, target in imports(name, path):
            top = target.split(".")[0]
            if top in layers and top != own and layers[top] >= layers[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            if top in WEB_FRAMEWORKS and own not in declared()["web"]:  # type: ignore[operator]
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} (web framework)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {
        name: {t for _, t in imports(name, path) if t in modules() and t != name}
        for name, path in modules().items()
    }
    # a package's __init__ naming its own modules is how a package shows its face, not a loop
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("from tiles.gltf import x", "api.tiles", "tiles.gltf"),
        ("from . import ops", "api.app", "api.ops"),
        ("from .gltf import write_glb", "tiles.content", "tiles.gltf"),
        ("import ingest.pipeline", "cli.main", "ingest.pipeline"),
    ],
)
def test_imports_are_read_as_python_resolves_them(
    tmp_path: Path, source: str, name: str, expected: str
) -> None:
    path = tmp_path / "m.py"
    path.write_text(f"def f():\n    {source}\n")
    assert [t for _, t in imports(name, path)] == [expected]
