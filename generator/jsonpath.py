"""The JSONPath subset mappings use: `$`, `.key`, `["quoted key"]` and `[index]`."""

from __future__ import annotations

import json
import re

PathSegment = str | int

_DOT_KEY = re.compile(r"\.([A-Za-z_$][\w$-]*)")
_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"""\[("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\]""")


class PathSyntaxError(ValueError):
    """A path outside the supported subset; the message says where."""


def parse_path(path: str) -> list[PathSegment]:
    """`$.context.page["url"]` → ["context", "page", "url"]."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"{path!r} must start with '$' (e.g. $.traits.email)")
    segments: list[PathSegment] = []
    position = 1
    if path == "$.":
        return segments
    while position < len(path):
        rest = path[position:]
        if match := _DOT_KEY.match(rest):
            segments.append(match.group(1))
        elif match := _INDEX.match(rest):
            segments.append(int(match.group(1)))
        elif match := _QUOTED.match(rest):
            quoted = match.group(1)
            segments.append(json.loads('"' + quoted[1:-1].replace("\\'", "'") + '"'))
        else:
            raise PathSyntaxError(
                f'{path!r} is not a supported path at column {position + 1}; use $.a.b, $.a["b c"] or $.a[0]'
            )
        position += match.end()
    return segments


def dotted_path(path: str) -> list[PathSegment]:
    """An FQL field such as `context.page.path` → ["context", "page", "path"]."""
    return parse_path("$." + path)
