"""The <script> tag for a build, for any page: the content-hashed file, its SRI, crossorigin and a CSP nonce."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError

MANIFEST_NAME = "manifest.json"


class TagError(GeneratorError):
    """The build folder or manifest cannot give a tag; the message says which and what to do."""


def script_tag(
    build: str | Path | Mapping[str, Any],
    *,
    prefix: str = "/",
    nonce: str | None = None,
    crossorigin: str | None = "anonymous",
) -> str:
    """`<script src=… integrity=… crossorigin=… nonce=…></script>` for a build, every value HTML-escaped.

    build is the folder `segment-pendo build --out` wrote, its manifest.json, or the manifest itself. prefix is
    the URL that folder is served under ("/static/segment-pendo/", "https://cdn.example.com/sp/"). The tag
    names the content-hashed script (the manifest's "entry"), so a browser's cached copy of an older build is
    never checked against the new SRI.
    """
    manifest = build if isinstance(build, Mapping) else read_manifest(build)
    entry = manifest.get("entry")
    files = manifest.get("files")
    if entry is None and isinstance(manifest.get("module"), Mapping):
        raise TagError(
            f"{_describe(build)} holds the ES module only (--format esm): import it in the app's code, or rebuild "
            "with --format both for the script"
        )
    if not isinstance(entry, str) or not isinstance(files, Mapping) or entry not in files:
        raise TagError(f'{_describe(build)} has no "entry" script: rebuild it with `segment-pendo build`')
    base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    attributes = {"src": base + entry, "integrity": files[entry]["sri"], "crossorigin": crossorigin, "nonce": nonce}
    text = " ".join(f'{name}="{html.escape(value, quote=True)}"' for name, value in attributes.items() if value)
    return f"<script {text}></script>"


def read_manifest(build: str | Path) -> Mapping[str, Any]:
    """The manifest of a build folder (or a manifest.json path), reread only when the file changed."""
    path = Path(build)
    folder = path.parent if path.name == MANIFEST_NAME else path
    path = folder / MANIFEST_NAME
    try:
        stat = path.stat()
    except OSError:
        raise TagError(f"{folder}: no build here; run `segment-pendo build --config … --out {folder}`") from None
    return _load(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int, size: int) -> Mapping[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TagError(f"{path}: not a readable manifest ({error}); rebuild with `segment-pendo build`") from None
    if not isinstance(loaded, Mapping):
        raise TagError(f"{path}: not a segment-pendo manifest; rebuild with `segment-pendo build`")
    return loaded


def _describe(build: str | Path | Mapping[str, Any]) -> str:
    return "the manifest" if isinstance(build, Mapping) else str(build)
