"""Compiled predicates and mappings as one page script, to run the real compiled code in Chromium."""

from __future__ import annotations

import json
import re
from typing import Any

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
