"""The subset of Segment's FQL that subscriptions use: parsed here, compiled to a JavaScript predicate.

Supported: `field = value`, `!=`, `<`, `<=`, `>`, `>=`, `and`, `or`, `not`, parentheses,
`contains(field, "x")`, `match(field, "prefix*")` / `match(field, "*suffix")` and their `!` forms.
Fields: type, event, name, userId, and paths under properties., traits. and context.
Values: "double-quoted strings" (no escapes, as in Segment), numbers, true, false, null.

Comparisons follow Segment's destination-subscriptions: `=` and `!=` compare strings strictly, a
number compares only with a number, `= null` / `!= null` test for absence / presence, and a missing
field satisfies only `!=` and `= null`. Unlike Segment's parser, `and` binds no tighter than `or`
only with parentheses: mixing them at one level is an error rather than a silent guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from generator.literals import LiteralTable
from generator.mapping import MISSING, compile_path, resolve_path

ROOT_FIELDS = ("type", "event", "name", "userId")
EVENT_TYPES = ("track", "identify", "group", "page", "screen", "alias")
NESTED_ROOTS = ("properties", "traits", "context")
ORDERING = ("<", "<=", ">", ">=")


class FqlError(ValueError):
    """A subscription outside the supported subset; the message names the column."""

    def __init__(self, source: str, column: int, message: str) -> None:
        """Point at the 1-based column of the problem."""
        self.column = column
        super().__init__(f"{message} at column {column} of {source!r}")


@dataclass(frozen=True)
class Token:
    """One lexical token and where it starts (0-based)."""

    kind: str
    text: str
    start: int


@dataclass(frozen=True)
class Compare:
    """`field op value`."""

    field: tuple[str, ...]
    operator: str
    value: Any


@dataclass(frozen=True)
class Function:
    """`contains(field, "x")` or `match(field, "x*")`, possibly negated with `!`."""

    name: str
    field: tuple[str, ...]
    argument: str
    negated: bool


@dataclass(frozen=True)
class Not:
    """`not expr`."""

    operand: Node


@dataclass(frozen=True)
class Junction:
    """`a and b and …` or `a or b or …`."""

    operator: str
    operands: tuple[Node, ...]


Node = Compare | Function | Not | Junction

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"[^"]*")
  | (?P<bad_string>'[^']*'|"[^"]*$)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+))
  | (?P<operator>!=|<=|>=|=|<|>)
  | (?P<bang>!)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
  | (?P<ident>(?:[A-Za-z_]|\\.)(?:[A-Za-z0-9_-]|\\.)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null", "contains", "match"}


def tokenize(source: str) -> list[Token]:
    """Split an FQL string into tokens, or raise FqlError at the first character that fits none."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise FqlError(source, position + 1, f"unexpected character {source[position]!r}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "bad_string":
            hint = "use double quotes" if text.startswith("'") else "close the string with a double quote"
            raise FqlError(source, position + 1, f"bad string {text!r}: {hint}")
        if kind == "ident" and text in _KEYWORDS:
            kind = text
        if kind != "space":
            tokens.append(Token(kind, text, position))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0

    def fail(self, token: Token, message: str) -> FqlError:
        return FqlError(self.source, token.start + 1, message)

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self, kind: str, expected: str) -> Token:
        token = self.current
        if token.kind != kind:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise self.fail(token, f"expected {expected}, found {found}")
        self.index += 1
        return token

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise self.fail(self.current, 'empty subscription; write e.g. type = "track"')
        node = self.expression()
        if self.current.kind != "end":
            raise self.fail(self.current, f"expected 'and', 'or' or the end, found {self.current.text!r}")
        return node

    def expression(self) -> Node:
        operands = [self.unary()]
        operator: str | None = None
        while self.current.kind in ("and", "or"):
            token = self.current
            if operator is not None and token.kind != operator:
                raise self.fail(token, f"'{operator}' and '{token.kind}' mixed without parentheses; add them")
            operator = token.kind
            self.index += 1
            operands.append(self.unary())
        return operands[0] if operator is None else Junction(operator, tuple(operands))

    def unary(self) -> Node:
        token = self.current
        if token.kind == "not":
            self.index += 1
            return Not(self.unary())
        if token.kind == "bang":
            self.index += 1
            if self.current.kind not in ("contains", "match"):
                raise self.fail(self.current, "'!' goes only before contains( or match(; use 'not' otherwise")
            return self.function(negated=True)
        if token.kind == "lparen":
            self.index += 1
            node = self.expression()
            self.take("rparen", "')'")
            return node
        if token.kind in ("contains", "match"):
            return self.function(negated=False)
        return self.comparison()

    def field(self) -> tuple[str, ...]:
        first = self.take("ident", "a field such as type, event or properties.plan")
        segments = [_unescape(first.text)]
        while self.current.kind == "dot":
            self.index += 1
            segments.append(_unescape(self.take("ident", "a field name after '.'").text))
        root = segments[0]
        if root in ROOT_FIELDS and len(segments) > 1:
            raise self.fail(first, f"{root} has no sub-fields")
        if root in NESTED_ROOTS and len(segments) == 1:
            raise self.fail(first, f"name a field under {root}, e.g. {root}.plan")
        if root not in ROOT_FIELDS and root not in NESTED_ROOTS:
            allowed = ", ".join([*ROOT_FIELDS, *(f"{name}.*" for name in NESTED_ROOTS)])
            raise self.fail(first, f"unknown field {root!r}; use {allowed}")
        return tuple(segments)

    def comparison(self) -> Node:
        field_token = self.current
        field = self.field()
        operator = self.take("operator", "an operator (=, !=, <, <=, >, >=)").text
        token = self.current
        value: Any
        if token.kind == "string":
            value = token.text[1:-1]
        elif token.kind == "number":
            value = float(token.text) if "." in token.text else int(token.text)
        elif token.kind in ("true", "false"):
            value = token.kind == "true"
        elif token.kind == "null":
            value = None
        else:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise self.fail(token, f'expected a value ("text", number, true, false, null), found {found}')
        self.index += 1
        if operator in ORDERING and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.fail(token, f"{operator} compares numbers only")
        if value is None and operator not in ("=", "!="):
            raise self.fail(token, "null goes only with = or !=")
        if field == ("type",) and not isinstance(value, str):
            raise self.fail(field_token, 'type compares with a string such as "track"')
        return Compare(field, operator, value)

    def function(self, *, negated: bool) -> Node:
        name_token = self.current
        self.index += 1
        self.take("lparen", f"'(' after {name_token.text}")
        field_token = self.current
        field = self.field()
        if field == ("type",):
            raise self.fail(field_token, f"{name_token.text}() does not apply to type")
        self.take("comma", "','")
        argument_token = self.take("string", 'a "double-quoted" string')
        argument = argument_token.text[1:-1]
        self.take("rparen", "')'")
        if name_token.kind == "match" and not _is_supported_pattern(argument):
            raise self.fail(
                argument_token, 'match() takes "prefix*" or "*suffix" (as in Segment); use contains() for the middle'
            )
        return Function(name_token.kind, field, argument, negated)


def _unescape(identifier: str) -> str:
    return re.sub(r"\\(.)", r"\1", identifier)


def _is_supported_pattern(pattern: str) -> bool:
    stars = pattern.count("*")
    return len(pattern) > 1 and stars == 1 and (pattern.endswith("*") or pattern.startswith("*"))


def parse_fql(source: str) -> Node:
    """Parse a subscription, raising FqlError (with the column) for anything outside the subset."""
    return _Parser(source).parse()


def selects_only(node: Node, field: str, value: str) -> bool:
    """Whether every event the subscription matches has field = value (a top-level `and` term says so)."""
    if isinstance(node, Junction) and node.operator == "and":
        return any(selects_only(operand, field, value) for operand in node.operands)
    return isinstance(node, Compare) and node.field == (field,) and node.operator == "=" and node.value == value


# Where Segment's engine reads the same text differently ----------------------------------------------

# Object.prototype's own names: Segment's engine finds them on every object; here only own keys count.
_PROTOTYPE_KEYS = {
    "__proto__",
    "constructor",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
}


def segment_differences(source: str) -> list[str]:
    """The constructs in a valid subscription that Segment's own engine evaluates differently from here."""
    notes: list[str] = []
    depth = deepest = 0
    for token in tokenize(source):
        depth += {"lparen": 1, "rparen": -1}.get(token.kind, 0)
        deepest = max(deepest, depth)
    if deepest > 1:
        notes.append("nested parentheses, which Segment's engine fails to parse")
    _collect_differences(parse_fql(source), notes)
    return list(dict.fromkeys(notes))


def _collect_differences(node: Node, notes: list[str]) -> None:
    if isinstance(node, Junction):
        for operand in node.operands:
            _collect_differences(operand, notes)
        return
    if isinstance(node, Not):
        notes.append("'not', which Segment's engine skips (there the condition is not negated)")
        _collect_differences(node.operand, notes)
        return
    name = ".".join(node.field)
    if _PROTOTYPE_KEYS & set(node.field[1:]):
        notes.append(f"{name}, which Segment's engine reads from the prototype; here only own keys count")
    if isinstance(node, Compare) and node.operator == "!=" and isinstance(node.value, bool):
        notes.append(f"{name} != {str(node.value).lower()}, which always holds in Segment's engine")
    if isinstance(node, Compare) and node.value is None and node.field in (("event",), ("type",)):
        notes.append(f"{name} {node.operator} null, which Segment's engine compares with the text 'null'")


# Compiling to JavaScript --------------------------------------------------------------------------


def compile_fql(node: Node, literals: LiteralTable, event: str = "e") -> str:
    """A JavaScript boolean expression over the event object named `event`."""
    if isinstance(node, Junction):
        joiner = " && " if node.operator == "and" else " || "
        return "(" + joiner.join(compile_fql(operand, literals, event) for operand in node.operands) + ")"
    if isinstance(node, Not):
        return f"!{compile_fql(node.operand, literals, event)}"
    if len(node.field) == 1 and node.field[0] in ROOT_FIELDS:
        # One of FQL's fixed top-level fields: its name is part of the grammar, not a config value.
        actual = f"own({event}, {json.dumps(node.field[0])})"
    else:
        actual = compile_path(list(node.field), literals, event)
    if isinstance(node, Function):
        negated = ", true" if node.negated else ""
        if node.name == "contains":
            return f"containsText({actual}, {literals.ref(node.argument)}{negated})"
        if node.argument.endswith("*"):
            return f"startsWithText({actual}, {literals.ref(node.argument[:-1])}{negated})"
        return f"endsWithText({actual}, {literals.ref(node.argument[1:])}{negated})"
    return _compile_compare(node, actual, literals)


_NUMBER_HELPERS = {
    "<": "lessThan",
    "<=": "atMost",
    ">": "greaterThan",
    ">=": "atLeast",
    "=": "numberEquals",
    "!=": "numberDiffers",
}


def _compile_compare(node: Compare, actual: str, literals: LiteralTable) -> str:
    kind, expected = _comparison_kind(node)
    negate = node.operator == "!="
    if kind == "null":
        return f"{'' if negate else '!'}isPresent({actual})"
    if kind in ("order", "number"):
        return f"{_NUMBER_HELPERS[node.operator]}({actual}, {literals.ref(expected)})"
    if node.field == ("type",) and expected in EVENT_TYPES:
        # Segment's event types are part of the spec, not config values: compared in the code itself.
        return f"({actual} {'!==' if negate else '==='} {json.dumps(expected)})"
    return f"({actual} {'!==' if negate else '==='} {literals.ref(expected)})"


def _comparison_kind(node: Compare) -> tuple[str, Any]:
    value = node.value
    if value is None:
        return "null", None
    if node.operator in ORDERING:
        return "order", value
    if isinstance(value, bool):
        return "exact", value
    if isinstance(value, int | float):
        if node.field[0] in NESTED_ROOTS:
            return "number", value
        return "exact", js_number_text(value)
    return "exact", value


def js_number_text(value: float) -> str:
    """JavaScript's String(number) for the numbers FQL literals can hold."""
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


# The reference evaluator ----------------------------------------------------------------------------


def evaluate_fql(node: Node, event: Any) -> bool:
    """What the compiled predicate returns for event, computed in Python."""
    if isinstance(node, Junction):
        results = (evaluate_fql(operand, event) for operand in node.operands)
        return all(results) if node.operator == "and" else any(results)
    if isinstance(node, Not):
        return not evaluate_fql(node.operand, event)
    actual = resolve_path(event, list(node.field))
    if isinstance(node, Function):
        # Segment's engine: a text test, negated or not, is false for anything but text.
        if not isinstance(actual, str):
            return False
        if node.name == "contains":
            found = node.argument in actual
        elif node.argument.endswith("*"):
            found = actual.startswith(node.argument[:-1])
        else:
            found = actual.endswith(node.argument[1:])
        return found != node.negated
    kind, expected = _comparison_kind(node)
    if kind == "null":
        present = actual is not MISSING and actual is not None
        return present if node.operator == "!=" else not present
    if kind in ("order", "number"):
        if not _is_number(actual):
            return False
        outcomes: dict[str, bool] = {
            "<": actual < expected,
            "<=": actual <= expected,
            ">": actual > expected,
            ">=": actual >= expected,
            "=": actual == expected,
            "!=": actual != expected,
        }
        return outcomes[node.operator]
    same = _strictly_equal(actual, expected)
    return not same if node.operator == "!=" else same


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strictly_equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return actual is expected
    return isinstance(actual, str) and actual == expected
