"""Compiled predicates and mappings as one page script, to run the real compiled code in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from generator.bundle import find_esbuild
from generator.fql import compile_fql, parse_fql
from generator.literals import LiteralTable
from generator.mapping import compile_mapping
from generator.paths import STATIC_DIR

UNDEFINED = "<undefined>"


def _helpers() -> str:
    return re.sub(r"^export ", "", (STATIC_DIR / "event-values.js").read_text(), flags=re.M)


def predicates_script(queries: list[str]) -> str:
    """Defines window.compiledPredicates: one function per query, each compiled from FQL."""
    literals = LiteralTable()
    bodies = [compile_fql(parse_fql(query), literals) for query in queries]
    functions = ",\n".join(f"function (e) {{ return {body}; }}" for body in bodies)
    return (
        f"(function () {{\n{_helpers()}\nconst L = {json.dumps(literals.values)};\n"
        f"window.compiledPredicates = [{functions}];\n}})();"
    )


def mappings_script(mappings: list[Any]) -> str:
    """Defines window.compiledMappings: one function per mapping; undefined comes back as a marker."""
    literals = LiteralTable()
    bodies = [compile_mapping(mapping, literals) for mapping in mappings]
    functions = ",\n".join(
        f"function (e) {{ const v = {body}; return v === undefined ? {json.dumps(UNDEFINED)} : v; }}" for body in bodies
    )
    return (
        f"(function () {{\n{_helpers()}\nconst L = {json.dumps(literals.values)};\n"
        f"window.compiledMappings = [{functions}];\n}})();"
    )


def static_exports_script(module: str, names: list[str]) -> str:
    """A page script putting the named exports of static/<module> on window, bundled by esbuild."""
    binary = find_esbuild()
    assert binary is not None, "no esbuild binary: run npm ci"
    with tempfile.TemporaryDirectory() as work:
        for path in STATIC_DIR.glob("*.js"):
            shutil.copyfile(path, Path(work) / path.name)
        assignments = " ".join(f"window.{name} = {name};" for name in names)
        (Path(work) / "entry.js").write_text(f"import {{ {', '.join(names)} }} from './{module}';\n{assignments}\n")
        completed = subprocess.run(
            [str(binary), "entry.js", "--bundle", "--format=iife"], cwd=work, capture_output=True, text=True, check=True
        )
    return completed.stdout
