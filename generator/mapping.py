"""Segment's mapping directives, checked at build time and compiled to JavaScript expressions.

Supported: literals (strings, numbers, booleans), nested objects and arrays of mappings,
`{"@path": "$.a.b"}`, `{"@if": {"exists"|"blank": m, "then": m, "else": m}}`,
`{"@template": "{{traits.first}} {{traits.last}}"}` and `{"@literal": value}`.
The Python evaluator here is the reference the compiled JavaScript is tested against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from generator.jsonpath import PathSegment, PathSyntaxError, dotted_path, parse_path
from generator.literals import LiteralTable

DIRECTIVES = ("@path", "@if", "@template", "@literal")
IF_CONDITIONS = ("exists", "blank")
MAX_DEPTH = 8
MAX_NODES = 400
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class MappingError(ValueError):
    """A mapping outside the supported subset; `where` names the spot inside the mapping."""

    def __init__(self, where: str, message: str) -> None:
        """Record where in the mapping the problem is."""
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class Missing:
    """Stands for JavaScript's undefined: a value that is not there (unlike None, JSON null)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        """One shared instance."""
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        """Shown in test failures."""
        return "MISSING"


MISSING = Missing()


def check_mapping(value: Any, where: str = "") -> None:
    """Raise MappingError for anything outside the subset, too deep or too large."""
    _check(value, where, depth=0, budget=[MAX_NODES])


def _check(value: Any, where: str, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise MappingError(where, f"mapping is too large (more than {MAX_NODES} values); simplify it")
    if depth > MAX_DEPTH:
        raise MappingError(where, f"mapping is nested more than {MAX_DEPTH} levels deep; flatten it")
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", depth + 1, budget)
        return
    if not isinstance(value, Mapping):
        raise MappingError(where, f"{type(value).__name__} is not a mapping value")
    directives = [key for key in value if str(key).startswith("@")]
    # Segment's stored mappings may carry a _metadata key beside a directive; it has no effect.
    if directives and "_metadata" in value:
        value = {key: item for key, item in value.items() if key != "_metadata"}
    if not directives:
        for key, item in value.items():
            _check(item, _join(where, key), depth + 1, budget)
        return
    if len(value) != 1:
        raise MappingError(where, f"{directives[0]} must be the only key of its object")
    _check_directive(directives[0], value[directives[0]], where, depth, budget)


def _check_directive(directive: str, argument: Any, where: str, depth: int, budget: list[int]) -> None:
    inner = _join(where, directive)
    if directive == "@path":
        _check_path_directive(argument, inner)
    elif directive == "@template":
        _check_template_directive(argument, inner)
    elif directive == "@if":
        _check_if(argument, inner, depth, budget)
    elif directive == "@literal":
        if not _is_json(argument):
            raise MappingError(inner, "expects a JSON value")
        _check(argument, inner, depth + 1, budget)
    else:
        raise MappingError(where, f"unknown mapping directive {directive!r}; supported: {', '.join(DIRECTIVES)}")


def _check_path_directive(argument: Any, where: str) -> None:
    if not isinstance(argument, str):
        raise MappingError(where, 'expects a path string such as "$.traits.email"')
    try:
        mapping_path(argument)
    except PathSyntaxError as error:
        raise MappingError(where, str(error)) from None


def _check_template_directive(argument: Any, where: str) -> None:
    if not isinstance(argument, str):
        raise MappingError(where, 'expects a string such as "{{traits.first}} {{traits.last}}"')
    for placeholder in _PLACEHOLDER.findall(argument):
        if placeholder.startswith("$"):
            raise MappingError(
                where, f"write {{{{{placeholder.lstrip('$.')}}}}} without '$.': template paths start at the event"
            )
        try:
            dotted_path(placeholder)
        except PathSyntaxError:
            raise MappingError(where, f"{{{{{placeholder}}}}} is not a field path such as traits.first") from None


def _check_if(argument: Any, where: str, depth: int, budget: list[int]) -> None:
    if not isinstance(argument, Mapping):
        raise MappingError(where, "expects {exists|blank: ..., then: ..., else: ...}")
    conditions = [key for key in argument if key in IF_CONDITIONS]
    unknown = [key for key in argument if key not in (*IF_CONDITIONS, "then", "else")]
    if unknown:
        raise MappingError(where, f"unknown key {unknown[0]!r}; use exists or blank, then, else")
    if len(conditions) != 1:
        raise MappingError(where, "needs exactly one condition: exists or blank")
    for key in (conditions[0], "then", "else"):
        if key in argument:
            _check(argument[key], _join(where, key), depth + 1, budget)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def mapping_path(path: str) -> list[PathSegment]:
    """A @path value: `$.a.b`, or `a.b` without the `$.` as Segment also accepts; `$` is the whole event."""
    if path in ("$", "$."):
        return []
    return parse_path(path if path.startswith("$") else "$." + path)


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


# Compiling to JavaScript ---------------------------------------------------------------------------


def compile_mapping(value: Any, literals: LiteralTable, event: str = "e", *, inline_keys: bool = False) -> str:
    """A JavaScript expression that computes the mapping from the event object named `event`.

    inline_keys: paths read their keys as JSON strings in the code instead of from the literal table;
    only for the generator's own preset mappings, whose keys are no config values.
    """

    def compile_part(part: Any) -> str:
        return compile_mapping(part, literals, event, inline_keys=inline_keys)

    if value is None or isinstance(value, bool | int | float | str):
        return literals.ref(value)
    if isinstance(value, list):
        return "[" + ", ".join(compile_part(item) for item in value) + "]"
    directive = next((key for key in value if str(key).startswith("@")), None)
    if directive is None:
        # Computed keys: a key named "__proto__" is an ordinary own property, not the prototype.
        literal = "{" + ", ".join(f"[{literals.ref(key)}]: {compile_part(item)}" for key, item in value.items()) + "}"
        # Undefined values need no removal where the object is only copied for Pendo (the copy leaves
        # them out), but an undefined toString or valueOf would make a loose compare (@if blank) throw.
        return f"objectOf({literal})" if _CONVERSION_KEYS & set(value) else literal
    argument = value[directive]
    if directive == "@path":
        return compile_path(mapping_path(argument), literals, event, inline_keys=inline_keys)
    if directive == "@literal":
        return compile_part(argument)
    if directive == "@template":
        return _compile_template(argument, literals, event)
    condition = "exists" if "exists" in argument else "blank"
    tested = compile_part(argument[condition])
    then = compile_part(argument["then"]) if "then" in argument else "undefined"
    # As in Segment's mapping-kit, an else branch that is a falsy literal counts as absent.
    has_else = "else" in argument and not _is_falsy_literal(argument["else"])
    otherwise = compile_part(argument["else"]) if has_else else "undefined"
    if condition == "exists" and then == tested:
        # "the value if present, else ...": ?? in one shared helper, which esbuild lowers only once for
        # older targets (both branches are plain reads of the event, so reading both changes nothing).
        return f"presentOr({tested}, {otherwise})"
    test = f"isPresent({tested})" if condition == "exists" else f"isFilled({tested})"
    return f"({test} ? {then} : {otherwise})"


_CONVERSION_KEYS = {"toString", "valueOf"}
EVENT_SPEC_FIELDS = frozenset(
    ("type", "event", "name", "userId", "anonymousId", "groupId", "properties", "traits", "context")
)


def _is_falsy_literal(value: Any) -> bool:
    return value is None or value is False or value == "" or (isinstance(value, int | float) and value == 0)


def compile_path(segments: list[PathSegment], literals: LiteralTable, event: str, *, inline_keys: bool = False) -> str:
    """Own-key reads along a path: nested `own` calls, or `pathOf` where a segment needs its rules.

    inline_keys: the keys are written as JSON strings in the code (the generator's own preset paths);
    otherwise each key is read from the literal table.
    """
    if not segments:
        return event
    if all(isinstance(segment, str) and segment != "length" for segment in segments):
        expression = event
        for position, segment in enumerate(segments):
            # The fields of Segment's event spec are the generator's own names, written in the code.
            inline = inline_keys or (position == 0 and segment in EVENT_SPEC_FIELDS)
            expression = f"own({expression}, {json.dumps(segment) if inline else literals.ref(segment)})"
        return expression
    return f"pathOf({event}, {literals.ref(segments)})"


def _compile_template(text: str, literals: LiteralTable, event: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(literals.ref(text[position : match.start()]))
        parts.append(compile_path(dotted_path(match.group(1)), literals, event))
        position = match.end()
    if position < len(text) or not parts:
        parts.append(literals.ref(text[position:]))
    # join reads undefined and null as empty text, and anything else as String(part) does.
    return f"[{', '.join(parts)}].join('')"


# The reference evaluator -----------------------------------------------------------------------------


def evaluate_mapping(value: Any, event: Any) -> Any:
    """What the compiled JavaScript computes, in Python: MISSING for undefined."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [evaluate_mapping(item, event) for item in value]
    directive = next((key for key in value if str(key).startswith("@")), None)
    if directive is None:
        result = {key: evaluate_mapping(item, event) for key, item in value.items()}
        return {key: item for key, item in result.items() if item is not MISSING}
    argument = value[directive]
    if directive == "@path":
        return resolve_path(event, mapping_path(argument))
    if directive == "@literal":
        return evaluate_mapping(argument, event)
    if directive == "@template":
        return _render_template(argument, event)
    condition = "exists" if "exists" in argument else "blank"
    tested = evaluate_mapping(argument[condition], event)
    holds = is_present(tested) if condition == "exists" else is_filled(tested)
    if holds:
        return evaluate_mapping(argument["then"], event) if "then" in argument else MISSING
    if "else" in argument and not _is_falsy_literal(argument["else"]):
        return evaluate_mapping(argument["else"], event)
    return MISSING


def resolve_path(root: Any, segments: list[PathSegment]) -> Any:
    """Walk own keys only, as the JavaScript does; MISSING where the path leaves the data.

    As in JavaScript (and so in both of Segment's engines), a list's items are also reached by their index as
    text, and `length` of a list or a string is its length (a string's in UTF-16 code units).
    """
    current = root
    for segment in segments:
        index = _as_index(segment)
        if isinstance(current, dict) and isinstance(segment, str) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and index is not None and index < len(current):
            current = current[index]
        elif isinstance(current, list) and segment == "length":
            current = len(current)
        elif isinstance(current, str) and segment == "length":
            current = len(current.encode("utf-16-le")) // 2
        else:
            return MISSING
    return current


def _as_index(segment: PathSegment) -> int | None:
    if isinstance(segment, int):
        return segment
    # JavaScript's canonical array index text: "0", "12", never "01", "-1" or "+1".
    if segment.isdigit() and segment.isascii() and (segment == "0" or not segment.startswith("0")):
        return int(segment)
    return None


def is_present(value: Any) -> bool:
    """The @if `exists` condition: neither undefined nor null."""
    return value is not MISSING and value is not None


def is_filled(value: Any) -> bool:
    """The @if `blank` condition, which (as in Segment) takes `then` when the value is NOT blank.

    Blank is undefined, null, or anything JavaScript's loose `== ''` equates with the empty
    string: '', 0, false, [] and the like.
    """
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, dict):
        return True
    return js_string(value) != ""


def _render_template(text: str, event: Any) -> str:
    def substitute(match: re.Match[str]) -> str:
        return template_text(resolve_path(event, dotted_path(match.group(1))))

    return _PLACEHOLDER.sub(substitute, text)


def template_text(value: Any) -> str:
    """How a value reads inside a template: empty for undefined and null, else JavaScript's String(value)."""
    return "" if value is MISSING or value is None else js_string(value)


def js_string(value: Any) -> str:
    """JavaScript's String(value) for JSON-like values."""
    if value is MISSING or value is None:
        return "undefined" if value is MISSING else "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join("" if item is None or item is MISSING else js_string(item) for item in value)
    return "[object Object]"
