"""pyproject's dependencies and extras list exactly what the package's code imports, group by group.

Each module of `generator` belongs to one group (the base install or an extra); the third-party top-level
imports of a group's modules, mapped to their distributions, must equal what that group declares. An extra
that lists a package no code of it imports (or code importing a package its extra forgets) fails here.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "generator"

# Import name → distribution, where they differ. pydantic_core is pydantic's own core, pinned exactly by it.
DISTRIBUTION_OF = {"esbuild_py": "esbuild-py", "pydantic_core": "pydantic"}
# Packages a group needs without importing them itself, each with the code that makes it needed.
USED_WITHOUT_IMPORT = {
    # server.py imports uvicorn's httptools protocol, which imports httptools.
    "relay": {"httptools": ("relay/server.py", "uvicorn.protocols.http.httptools_impl")},
    # The test kit's fixtures sit on pytest-playwright's own `context` fixture.
    "testing": {"pytest-playwright": ("testing/plugin.py", 'getfixturevalue("context")')},
}
# uvicorn's loop="auto" runs on uvloop when it is installed (not on Windows, hence the marker).
OPTIONAL_ACCELERATORS = {"relay": {"uvloop": ("relay/server.py", 'loop="auto"')}}
# The host application's own framework: the Django app and template tags are used from inside Django.
HOST_FRAMEWORK = {"django"}


def _group(module: Path) -> str:
    relative = module.relative_to(PACKAGE).as_posix()
    if relative.startswith("relay/pg_"):
        return "postgres"
    if relative.startswith("relay/"):
        return "relay"
    if relative == "bench.py":
        return "bench"
    if relative.startswith("testing/") or relative == "verify.py":
        return "testing"
    if relative.startswith("django/"):
        return "django"
    return "base"


def _third_party_imports(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "generator"}


def _imported_by_group() -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        imports = {DISTRIBUTION_OF.get(name, name).lower() for name in _third_party_imports(module)}
        groups.setdefault(_group(module), set()).update(imports)
    return groups


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def _declared() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return {
        "base": project["dependencies"],
        **{name: extras[name] for name in ("relay", "bench", "postgres", "testing")},
    }


@pytest.mark.parametrize("group", ["base", "relay", "bench", "postgres", "testing"])
def test_each_group_declares_exactly_what_its_code_imports(group: str) -> None:
    imported = _imported_by_group().get(group, set())
    needed = set(imported)
    for package, (module, evidence) in {
        **USED_WITHOUT_IMPORT.get(group, {}),
        **OPTIONAL_ACCELERATORS.get(group, {}),
    }.items():
        assert evidence in (PACKAGE / module).read_text(encoding="utf-8"), f"{package}: {module} no longer needs it"
        needed.add(package)
    declared = _names(_declared()[group])
    assert declared == needed, (
        f"{group}: declared but not imported {declared - needed}, imported but not declared {needed - declared}"
    )


def test_the_extras_do_not_repeat_the_base_install() -> None:
    declared = _declared()
    for group in ("relay", "bench", "postgres"):
        assert not _names(declared[group]) & _names(declared["base"]), group


def test_only_the_host_framework_is_left_undeclared() -> None:
    """The Django app's imports are the host application's; nothing else escapes the check above."""
    assert _imported_by_group()["django"] == HOST_FRAMEWORK


def test_the_cli_checks_the_relay_extra_it_needs() -> None:
    from generator.cli import RELAY_MODULES

    assert set(RELAY_MODULES) <= _names(_declared()["relay"])


def test_the_tests_own_http_client_is_in_the_test_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "httpx" in _names(project["optional-dependencies"]["test"])


PRODUCT_TEXT = ["generator", "templates", "static", "site_demo", "hatch_build.py", "README.md", "CHANGELOG.md"]
TRACKER_REFERENCE = re.compile(r"\bissues? ?#\d+|\(#\d+\b|\bgh-\d+", re.IGNORECASE)


def test_product_code_and_docs_speak_of_the_product_not_of_the_tracker() -> None:
    found = []
    for entry in PRODUCT_TEXT:
        path = ROOT / entry
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "build" not in p.parts]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            found += [f"{file.relative_to(ROOT)}: {match.group()}" for match in TRACKER_REFERENCE.finditer(text)]
    assert found == []
