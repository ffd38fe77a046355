"""What a build produced: sizes, gzip sizes and Subresource Integrity hashes."""

from __future__ import annotations

import base64
import gzip
import hashlib
from typing import Any


def gzip_size(data: bytes) -> int:
    """Bytes after gzip at the level CDNs typically serve (9), with a fixed header for repeatability."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def subresource_integrity(data: bytes) -> str:
    """The value for a script tag's integrity attribute."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def describe_file(data: bytes) -> dict[str, Any]:
    """Size, gzip size and SRI of one output file."""
    return {"bytes": len(data), "gzip_bytes": gzip_size(data), "sri": subresource_integrity(data)}


def make_manifest(
    files: dict[str, bytes], *, generator_version: str, bundler: str, config_digest: str, warnings: list[str]
) -> dict[str, Any]:
    """The manifest.json written beside the script."""
    return {
        "generator_version": generator_version,
        "esbuild_version": bundler,
        "config_digest": config_digest,
        "files": {name: describe_file(data) for name, data in sorted(files.items())},
        "warnings": warnings,
    }
