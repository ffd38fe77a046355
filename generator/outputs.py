"""Extra forms of the built script: a content-hashed copy for long caching, and an inline <script> for CSP hashes."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from generator.bundle import MINIFIED_NAME, SOURCE_MAP_NAME
from generator.errors import BundleError

INLINE_NAME = "segment-pendo.inline.html"
HASH_HEX_DIGITS = 10
_MAP_COMMENT = re.compile(r"//# sourceMappingURL=[^\n]*\n?$")
# Text that would end or comment out an inline <script> element early (HTML's script data state).
_UNSAFE_INLINE = re.compile(r"</script|<!--", re.IGNORECASE)


def code_without_map_comment(minified: str) -> str:
    """The script's code: everything before its trailing sourceMappingURL comment."""
    return _MAP_COMMENT.sub("", minified)


def hashed_name(minified: str) -> str:
    """segment-pendo.<first 10 hex of the sha256 of the code>.min.js.

    The hash covers the code without its source map comment, because the hashed copy's comment names the
    hashed map, whose name holds the hash: hashing the comment too would have no fixed point.
    """
    digest = hashlib.sha256(code_without_map_comment(minified).encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]
    return MINIFIED_NAME.replace(".min.js", f".{digest}.min.js")


def hashed_copies(minified: str, source_map: str) -> dict[str, bytes]:
    """The hashed script and its map, by file name; a script linked to its map links to the hashed map."""
    name = hashed_name(minified)
    code = code_without_map_comment(minified)
    map_name = name + ".map"
    document = json.loads(source_map)
    document["file"] = name
    link = f"//# sourceMappingURL={map_name}\n" if code != minified else ""
    return {
        name: f"{code}{link}".encode(),
        map_name: json.dumps(document, separators=(",", ":")).encode(),
    }


def inline_script(minified: str) -> tuple[str, str]:
    r"""The script as an inline <script> element (no source map comment) and its CSP source, 'sha256-…'.

    esbuild already writes `</script` inside literals as `<\/script` and never prints `<!--` as code, so a `<!--`
    can only sit in a string, template or regular expression literal (from a config value), where `\x3C` means
    the same `<` and keeps HTML's parser from seeing a comment opener.
    """
    code = code_without_map_comment(minified).replace("<!--", "\\x3C!--")
    if _UNSAFE_INLINE.search(code):
        raise BundleError(
            "the script contains </script or <!--, which would break an inline <script>; "
            f"include {MINIFIED_NAME} with a src instead of --inline"
        )
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")
    return f"<script>{code}</script>\n", f"'sha256-{digest}'"


__all__ = ["INLINE_NAME", "SOURCE_MAP_NAME", "hashed_copies", "hashed_name", "inline_script"]
