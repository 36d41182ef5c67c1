"""The OpenAPI document generates cleanly with the mainstream client generators.

A backend meant for other frontends must not lose operations or schemas in the generators
its users reach for first. Valid OpenAPI 3.1 is not enough: openapi-python-client silently
drops an operation whose header is declared with ``const``, a model with an array without
``items``, and an inline object it would generate twice under one name; and two paths that
differ only by a trailing slash get one generated name, the second overwriting the first.

Both generators are pinned: openapi-python-client in pyproject's ``test`` extra,
openapi-typescript in tests/openapi/package.json (installed by .ci/run with ``npm ci``).
Neither test skips: a missing generator is a failure.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from server.routes import document

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
TS_PACKAGE = Path(__file__).parent / "openapi"
OPENAPI_TYPESCRIPT = TS_PACKAGE / "node_modules" / ".bin" / "openapi-typescript"
TSC = TS_PACKAGE / "node_modules" / ".bin" / "tsc"
CLIENT_PACKAGE = "nve_generated_client"

# The document's media types that openapi-python-client has no built-in handling for, as
# the binary type it has: without this it leaves out the sprite's response and the tus
# PATCH (application/offset+octet-stream) whole. A generator setting, not a document change.
PYTHON_CLIENT_CONFIG = """\
post_hooks: []
content_type_overrides:
  application/offset+octet-stream: application/octet-stream
  image/jpeg: application/octet-stream
"""


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path with its parameters unnamed) of every operation in ``doc``."""
    return {(method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
            for path, item in doc["paths"].items() for method in item if method in METHODS}


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}):\n{output}"
    return output


@pytest.fixture(scope="module")
def document_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(json.dumps(document()))
    return path


@pytest.fixture(scope="module")
def python_client(document_file: Path) -> tuple[Path, str]:
    """The openapi-python-client package generated from the document, and what it printed."""
    work = document_file.parent
    (work / "config.yaml").write_text(PYTHON_CLIENT_CONFIG)
    output = _run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document_file),
                   "--config", str(work / "config.yaml"), "--meta", "none", "--fail-on-warning",
                   "--output-path", str(work / CLIENT_PACKAGE)], work)
    return work / CLIENT_PACKAGE, output


def test_openapi_python_client_generates_every_operation(python_client: tuple[Path, str]) -> None:
    package, output = python_client
    # --fail-on-warning already failed on any warning; this also names what was printed.
    assert "warning" not in output.lower() and "will not be generated" not in output, output
    generated = set()
    for module in (package / "api").rglob("*.py"):
        found = re.search(r'"method": "(\w+)",\s*"url": "([^"]*)"', module.read_text())
        if found:
            generated.add((found[1].upper(), re.sub(r"\{[^}]*\}", "{}", found[2])))
    expected = _operations(document())
    assert generated == expected, (f"dropped: {sorted(expected - generated)}; "
                                   f"unexpected: {sorted(generated - expected)}")
    # One module per operation: none overwrote another under the same name.
    assert len(list((package / "api").rglob("*.py"))) - len(list((package / "api").rglob("__init__.py"))) \
        == len(expected)


def test_openapi_python_client_generates_every_schema(python_client: tuple[Path, str]) -> None:
    package, _ = python_client
    models = set(re.findall(r'"(\w+)",', (package / "models" / "__init__.py").read_text()))
    expected = set()
    for name, schema in document()["components"]["schemas"].items():
        if schema.get("type") == "object":
            expected.add(name)
        elif "oneOf" in schema:  # a union: a model per object variant
            expected |= {f"{name}Type{i}" for i, variant in enumerate(schema["oneOf"])
                         if variant.get("type") == "object"}
        else:  # a scalar (FileName, ProjectId): a plain str/int in the client, no model
            assert schema.get("type") in {"string", "integer", "number", "boolean"}, name
    assert expected <= models, f"dropped: {sorted(expected - models)}"
    # Arrays are typed (an array without items is dropped by this generator), and no body or
    # field fell back to Any (as a top-level anyOf of `required` lists made the process body).
    assert "peaks: list[float]" in (package / "models" / "waveform.py").read_text()
    untyped = [f"{module.name}: {line.strip()}" for module in package.rglob("*.py")
               for line in module.read_text().splitlines()
               if re.fullmatch(r"\s+(body|[a-z_]+): Any,?", line)]
    assert not untyped, untyped


async def test_generated_python_client_drives_a_project_lifecycle(server, python_client) -> None:
    package, _ = python_client
    sys.path.insert(0, str(package.parent))
    try:
        api = importlib.import_module(CLIENT_PACKAGE)
        projects = {name: importlib.import_module(f"{CLIENT_PACKAGE}.api.projects.{name}")
                    for name in ("post_api_projects", "get_api_projects", "get_api_projects_id",
                                 "put_api_projects_id", "delete_api_projects_id")}
        models = importlib.import_module(f"{CLIENT_PACKAGE}.models")
        # The generated client is httpx; its asyncio functions, as the server runs on this loop.
        async with api.Client(base_url=f"http://127.0.0.1:{server.port}",
                              raise_on_unexpected_status=True) as client:
            created = await projects["post_api_projects"].asyncio_detailed(client=client, body=models.NewProject(
                name="Generated", video_filename="video-123.mp4", video_url="/videos/video-123.mp4"))
            assert created.status_code == 201, created.content
            project = created.parsed
            assert isinstance(project, models.Project)
            assert (project.name, project.video_filename, project.version) == ("Generated", "video-123.mp4", 1)

            got = await projects["get_api_projects_id"].asyncio(project.id, client=client)
            assert isinstance(got, models.Project) and got.id == project.id and got.name == "Generated"

            listed = await projects["get_api_projects"].asyncio(client=client, limit=10)
            assert [p.id for p in listed] == [project.id]

            updated = await projects["put_api_projects_id"].asyncio_detailed(
                project.id, client=client, body=models.ProjectChanges(name="Renamed", description="via client"),
                if_match=created.headers["etag"])
            assert updated.status_code == 200, updated.content
            assert isinstance(updated.parsed, models.Project)
            assert (updated.parsed.name, updated.parsed.description) == ("Renamed", "via client")
            assert updated.parsed.version == 2

            deleted = await projects["delete_api_projects_id"].asyncio_detailed(project.id, client=client)
            assert deleted.status_code == 204
            gone = await projects["get_api_projects_id"].asyncio_detailed(project.id, client=client)
            assert gone.status_code == 404 and isinstance(gone.parsed, models.Error)
    finally:
        sys.path.remove(str(package.parent))
        for name in [m for m in sys.modules if m == CLIENT_PACKAGE or m.startswith(CLIENT_PACKAGE + ".")]:
            del sys.modules[name]


def _ts_block(text: str, start: str, indent: str) -> list[str]:
    """The lines of the ``{ ... }`` block opened by the line ``start``, closed at ``indent``."""
    lines = text.splitlines()
    first = lines.index(start)
    end = next(i for i in range(first + 1, len(lines)) if lines[i] in (f"{indent}}}", f"{indent}}};"))
    return lines[first + 1:end]


def test_openapi_typescript_generates_every_operation_and_schema(document_file: Path, tmp_path: Path) -> None:
    assert OPENAPI_TYPESCRIPT.exists(), f"run `npm ci --prefix {TS_PACKAGE}` (as .ci/run does)"
    assert shutil.which("node"), "node is needed for openapi-typescript"
    output = _run([str(OPENAPI_TYPESCRIPT), str(document_file), "-o", str(tmp_path / "api.d.ts")], tmp_path)
    assert "warn" not in output.lower() and "error" not in output.lower(), output
    text = (tmp_path / "api.d.ts").read_text()

    generated = set()
    path = None
    for line in _ts_block(text, "export interface paths {", ""):
        if found := re.fullmatch(r' {4}"([^"]+)": \{', line):
            path = found[1]
        elif found := re.fullmatch(r" {8}(\w+): .*", line):  # `get?: never` is an absent method
            if found[1] in METHODS:
                generated.add((found[1].upper(), re.sub(r"\{[^}]*\}", "{}", path)))
    expected = _operations(document())
    assert generated == expected, (f"dropped: {sorted(expected - generated)}; "
                                   f"unexpected: {sorted(generated - expected)}")

    schemas = {found[1] for line in _ts_block(text, "    schemas: {", "    ")
               if (found := re.fullmatch(r" {8}(\w+): .*", line))}
    assert schemas == set(document()["components"]["schemas"])
    for name in schemas:
        assert not re.search(rf"^ {{8}}{name}: (unknown|never|Record<string, never>);$", text, re.M), name

    # What it wrote is TypeScript that compiles, strictly.
    _run([str(TSC), "--noEmit", "--strict", "--skipLibCheck", str(tmp_path / "api.d.ts")], tmp_path)
