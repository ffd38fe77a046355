"""The in-process bundler for machines without Node: module concatenation checked by esbuild-py.

esbuild-py exposes only esbuild's transform API (no bundling, no minify, no target), and returns an
empty string for a syntax error. So modules are joined here, line for line, into one IIFE, and
esbuild-py is the parser that must accept the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from generator.bundle import MINIFIED_NAME, SOURCE_MAP_NAME, Bundle
from generator.errors import BundleError
from generator.render import ENTRY_MODULE, RenderedModule

_IMPORT = re.compile(r"^import \{([^}]*)\} from '\./([\w.-]+\.js)';\s*$")
_EXPORT_PREFIX = re.compile(r"^export (?=(?:function|const|let|class)\s)")
_TOP_LEVEL_NAME = re.compile(r"^(?:export )?(?:function|const|let|var|class)\s+([A-Za-z_$][\w$]*)", re.M)
_EXPORTED_NAME = re.compile(r"^export (?:function|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
_MODULE_SYNTAX = re.compile(r"^\s*(?:import|export)\b")
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

Transform = Callable[[str], str]


def bundle_in_process(
    source_dir: Path,
    modules: list[RenderedModule],
    *,
    reason: str = "chosen with --bundler esbuild-py",
    transform: Transform | None = None,
    link_map: bool = False,
) -> Bundle:
    """Join the modules in dependency order into one IIFE and have esbuild-py parse it."""
    transform = transform or _esbuild_py_transform()
    texts = {module.name: (source_dir / module.name).read_text(encoding="utf-8") for module in modules}
    origins = {module.name: module.origin for module in modules}
    order = _dependency_order(texts)
    _check_unique_top_level_names(order, texts, origins)

    lines = ["(function () {", "  'use strict';"]
    line_sources: list[tuple[int, int] | None] = [None, None]
    for source_index, name in enumerate(order):
        for line_number, source_line in enumerate(texts[name].splitlines()):
            line = "" if _IMPORT.match(source_line) else _EXPORT_PREFIX.sub("", source_line)
            if line and _MODULE_SYNTAX.match(line):
                raise BundleError(
                    f"{origins[name]}:{line_number + 1}: the fallback bundler understands only "
                    "\"import { a, b } from './x.js';\" and 'export function|const|let|class'"
                )
            lines.append(line)
            line_sources.append((source_index, line_number))
    lines.append("})();")
    line_sources.append(None)
    code = "\n".join(lines) + "\n"

    if not transform(code).strip():
        raise BundleError(_locate_syntax_error(order, texts, origins, transform))
    source_map = {
        "version": 3,
        "file": MINIFIED_NAME,
        "sources": [origins[name] for name in order],
        "sourcesContent": [texts[name] for name in order],
        "names": [],
        "mappings": _line_mappings(line_sources),
    }
    return Bundle(
        readable=code,
        minified=f"{code}//# sourceMappingURL={SOURCE_MAP_NAME}\n" if link_map else code,
        source_map=json.dumps(source_map, separators=(",", ":")),
        bundler=f"esbuild-py {_esbuild_py_version()} (fallback)",
        warnings=[
            f"bundled with the esbuild-py fallback ({reason}): segment-pendo.min.js is NOT minified and "
            "[build].target is not enforced"
        ],
    )


def _esbuild_py_transform() -> Transform:
    try:
        import esbuild_py  # noqa: PLC0415  (optional dependency, needed only here)
    except ImportError as error:
        raise BundleError(
            "no esbuild binary found and esbuild-py is not installed; run `npm ci` or `pip install esbuild-py`"
        ) from error
    transform: Transform = esbuild_py.transform
    return transform


def _esbuild_py_version() -> str:
    try:
        return metadata.version("esbuild-py")
    except metadata.PackageNotFoundError:
        return "unknown"


def _dependency_order(texts: dict[str, str]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, importer: str) -> None:
        if name in order:
            return
        if name not in texts:
            raise BundleError(f"{importer} imports ./{name}, which is neither a template nor a static module")
        if name in visiting:
            raise BundleError(f"import cycle through {name}; the fallback bundler needs an acyclic module graph")
        visiting.add(name)
        for line in texts[name].splitlines():
            match = _IMPORT.match(line)
            if not match:
                continue
            dependency = match.group(2)
            visit(dependency, name)
            wanted = {part.strip() for part in match.group(1).split(",") if part.strip()}
            missing = wanted - set(_EXPORTED_NAME.findall(texts[dependency]))
            if missing:
                raise BundleError(f"{name} imports {', '.join(sorted(missing))} that ./{dependency} does not export")
        visiting.discard(name)
        order.append(name)

    visit(ENTRY_MODULE, "the bundle")
    return order


def _check_unique_top_level_names(order: list[str], texts: dict[str, str], origins: dict[str, str]) -> None:
    owner: dict[str, str] = {}
    for name in order:
        for declared in _TOP_LEVEL_NAME.findall(texts[name]):
            if declared in owner:
                raise BundleError(
                    f"{origins[name]} and {origins[owner[declared]]} both declare {declared!r} at top level; "
                    "the fallback bundler shares one scope, so rename one"
                )
            owner[declared] = name


def _locate_syntax_error(order: list[str], texts: dict[str, str], origins: dict[str, str], transform: Transform) -> str:
    for name in order:
        if not transform(texts[name]).strip():
            return (
                f"{origins[name]}: esbuild-py could not parse this module (it reports no detail; "
                "install the esbuild binary with `npm ci` for the exact error)"
            )
    return (
        "esbuild-py could not parse the joined bundle (it reports no detail; install the esbuild binary "
        "with `npm ci` for the exact error)"
    )


def _line_mappings(line_sources: list[tuple[int, int] | None]) -> str:
    """Source map v3 mappings where each generated line starts at column 0 of one source line."""
    previous_source = 0
    previous_line = 0
    groups = []
    for entry in line_sources:
        if entry is None:
            groups.append("")
            continue
        source, line = entry
        groups.append(_vlq(0) + _vlq(source - previous_source) + _vlq(line - previous_line) + _vlq(0))
        previous_source, previous_line = source, line
    return ";".join(groups)


def _vlq(value: int) -> str:
    remaining = (-value << 1) | 1 if value < 0 else value << 1
    encoded = ""
    while True:
        digit = remaining & 0b11111
        remaining >>= 5
        if remaining:
            digit |= 0b100000
        encoded += _BASE64[digit]
        if not remaining:
            return encoded
