"""Source checks: imports point down the layers, handlers stand alone, no module cycles.

The layers, lowest first (a module may import its own package and any layer below it,
never one above; imports under ``TYPE_CHECKING`` and inside functions count too, as they
tie the modules together just the same):

====================  =================================================================
``core``, ``ext``      the domain and the media loops: no sockets, nothing of server/
``server.http``        HTTP transport: connection, protocol, routing, multipart, files
``server.ws``          WebSocket protocol, hub and bus
``server.policy``      request policy: client, access, rate limits, idempotency, metrics
``server.app``         the app's services and their lifecycle
``server.apidoc``      the OpenAPI builders and document
``server.handlers``    one module per resource; none imports another
``server.routes``      the route table          ``server.dispatch``: request -> answer
``server.cli``         the ``nve`` command and the serve lifecycle
====================  =================================================================

Run as a test, the way asyncpg runs its source checks, so a change that breaks a rule
fails CI with the import that broke it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS: list[tuple[str, ...]] = [
    ("core", "ext"),
    ("server.http",),
    ("server.ws",),
    ("server.policy",),
    ("server.app",),
    ("server.apidoc",),
    ("server.handlers",),
    ("server.routes", "server.dispatch"),
    ("server.cli",),
]
_PYX_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import|import\s+([\w.]+))", re.MULTILINE)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*ROOT.glob("core/**/*.py"), *ROOT.glob("server/**/*.py"), *ROOT.glob("ext/*.pyx")]
    return {_module_name(path): path for path in files}


SOURCES = _sources()


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (anywhere in it), as dotted names."""
    text = path.read_text()
    found: set[str] = set()
    if path.suffix == ".pyx":
        found = {match.group(1) or match.group(2) for match in _PYX_IMPORT.finditer(text)}
    else:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import (the project imports absolutely)"
                base = node.module or ""
                found.add(base)
                # `from server import apidoc` imports the module server.apidoc
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in map(_resolve, found) if module is not None}


def _resolve(name: str) -> str | None:
    """The project module ``name`` is, or is in (``server.http.response.HTTPError`` -> its module)."""
    while name:
        if name in SOURCES:
            return name
        name = name.rpartition(".")[0]
    return None


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def _package(module: str) -> str:
    for prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return prefix
    return module


ROOTS = {"core", "server"}
"""The top packages' own __init__ modules: `from server import apidoc` names one, but imports the other."""
GRAPH = {module: _imports(path) - {module} - ROOTS for module, path in SOURCES.items() if module not in ROOTS}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    upward = sorted(target for target in GRAPH[module]
                    if _package(target) != _package(module) and _layer(target) > _layer(module))
    assert not upward, f"{module} imports {upward}, which are not below it"


def test_handlers_import_no_other_handler() -> None:
    crossing = {module: sorted(target for target in GRAPH[module]
                               if target.startswith("server.handlers.") and target != module)
                for module in GRAPH if module.startswith("server.handlers.")}
    assert not {module: targets for module, targets in crossing.items() if targets}


def test_the_transport_knows_nothing_above_it() -> None:
    """server/http and server/ws: no request policy, no app, no handler (the rule the layers give,
    spelled out for the layers a newcomer most often reaches into)."""
    for module in GRAPH:
        if module.startswith(("server.http", "server.ws")):
            assert not {t for t in GRAPH[module] if t.startswith(("server.policy", "server.app", "server.handlers"))}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_checks_see_the_tree() -> None:
    """The graph is not empty by mistake: a known downward import is found."""
    assert "server.http.request" in GRAPH["server.dispatch"]
    assert "core.media.errors" in GRAPH["ext.progress"]
