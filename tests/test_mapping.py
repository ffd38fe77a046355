"""Mapping directives: what is refused and why; the Python reference against Segment's own mapping engine,
and compiled JavaScript against the Python reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page

from generator.mapping import MISSING, MappingError, check_mapping, evaluate_mapping
from tests.support.compiled_js import UNDEFINED, mappings_script
from tests.support.segment_engine import run_segment_engine

EVENTS: list[dict[str, Any]] = [
    {
        "type": "identify",
        "userId": "u1",
        "traits": {"first": "Ada", "last": "Lovelace", "email": "ada@example.com", "age": 36, "vip": False},
        "context": {"groupId": "ctx-group", "page": {"url": "https://x.example/a"}},
        "groupId": "g1",
    },
    {"type": "group", "groupId": "g2", "traits": {"name": "Initech", "parentAccount": {"id": "p1"}, "n": 0}},
    {"type": "track", "event": "Clicked", "properties": {"list": [1, None, "x"], "empty": "", "zero": 0}},
    {"type": "track", "properties": {"weird key": "w", "__proto__": {"polluted": True}}},
    {},
]

MAPPINGS: list[Any] = [
    {"@path": "$.traits.email"},
    {"@path": "$.traits"},
    {"@path": "traits.first"},
    {"@path": "$."},
    {"@path": "$.properties.list[2]"},
    {"@path": '$.properties["weird key"]'},
    {"@path": "$.properties.__proto__.polluted"},
    "a literal",
    42,
    True,
    {"@literal": {"nested": {"@path": "$.userId"}}},
    {"visitor": {"id": {"@path": "$.userId"}, "mail": {"@path": "$.traits.email"}, "fixed": "x"}},
    [{"@path": "$.userId"}, {"@path": "$.missing"}, "z"],
    {
        "@if": {
            "exists": {"@path": "$.context.groupId"},
            "then": {"@path": "$.context.groupId"},
            "else": {"@path": "$.groupId"},
        }
    },
    {"@if": {"exists": {"@path": "$.traits.vip"}, "then": "has vip"}},
    {"@if": {"blank": {"@path": "$.traits.vip"}, "then": "filled", "else": "blank"}},
    {"@if": {"blank": {"@path": "$.traits.n"}, "then": "filled", "else": "blank"}},
    {"@if": {"blank": {"@path": "$.properties.empty"}, "then": "filled", "else": "blank"}},
    {"@if": {"blank": {"@path": "$.properties.list"}, "then": "filled", "else": ""}},
    {"@template": "{{traits.first}} {{traits.last}}"},
    {"@template": "{{ traits.age }}/{{traits.vip}}/{{properties.list}}/{{missing.x}}/{{traits}}"},
    {"@template": "no placeholders"},
    {"@template": "{{properties.zero}}"},
    {"@path": "$.properties.list.length"},
    {"@path": '$.properties.list["2"]'},
    {"@path": "$.event.length"},
    {"@path": '$.properties["weird key"].length'},
]


@pytest.mark.browser
def test_compiled_mappings_agree_with_the_python_reference(page: Page) -> None:
    page.set_content("<!doctype html><title>mapping</title>")
    page.add_script_tag(content=mappings_script(MAPPINGS))
    in_browser = page.evaluate(
        "(json) => { const events = JSON.parse(json); "
        "return JSON.stringify(window.compiledMappings.map((f) => events.map((e) => f(e)))); }",
        json.dumps(EVENTS),
    )
    in_python = [[_as_browser_json(evaluate_mapping(mapping, event)) for event in EVENTS] for mapping in MAPPINGS]
    browser_rows = json.loads(in_browser)
    disagreements = [
        (mapping, EVENTS[column], browser_rows[row][column], in_python[row][column])
        for row, mapping in enumerate(MAPPINGS)
        for column in range(len(EVENTS))
        if browser_rows[row][column] != in_python[row][column]
    ]
    assert disagreements == []


def _as_browser_json(value: Any) -> Any:
    if value is MISSING:
        return UNDEFINED
    return json.loads(json.dumps(value, default=lambda missing: None))


def test_the_reference_agrees_with_segments_mapping_engine() -> None:
    run = run_segment_engine(EVENTS, mapping={str(index): mapping for index, mapping in enumerate(MAPPINGS)})
    assert run.mapping_error is None
    disagreements = [
        (mapping, event, result["mapped"].get(str(index), "(left out)"), ours)
        for event, result in zip(EVENTS, run.results, strict=True)
        for index, mapping in enumerate(MAPPINGS)
        if result["mapped"].get(str(index), "(left out)") != (ours := _as_sent(evaluate_mapping(mapping, event)))
    ]
    assert disagreements == []


def _as_sent(value: Any) -> Any:
    """A mapped value as Pendo receives it, which is how the engines' outputs are compared.

    Both outputs cross JSON (a missing array item becomes null) and the browser script's data sanitizer
    drops "__proto__" keys, which Segment's engine leaves out of its copy too.
    """
    if value is MISSING:
        return "(left out)"
    if isinstance(value, list):
        return [None if item is MISSING else _as_sent(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_sent(item) for key, item in value.items() if key != "__proto__" and item is not MISSING}
    return value


@pytest.mark.parametrize(
    ("mapping", "event", "expected"),
    [
        ({"@path": "$.traits.email"}, EVENTS[0], "ada@example.com"),
        ({"@path": "$.traits.nope"}, EVENTS[0], MISSING),
        (MAPPINGS[13], EVENTS[0], "ctx-group"),
        (MAPPINGS[13], {"groupId": "g9"}, "g9"),
        (MAPPINGS[15], EVENTS[0], "blank"),
        (MAPPINGS[17], EVENTS[2], "blank"),
        (MAPPINGS[18], EVENTS[2], "filled"),
        (MAPPINGS[18], EVENTS[0], MISSING),
        (MAPPINGS[19], EVENTS[0], "Ada Lovelace"),
        (MAPPINGS[20], EVENTS[0], "36/false///[object Object]"),
        (MAPPINGS[11], EVENTS[4], {"visitor": {"fixed": "x"}}),
    ],
)
def test_reference_semantics_follow_segment_mapping_kit(mapping: Any, event: Any, expected: Any) -> None:
    assert evaluate_mapping(mapping, event) == expected


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"@case": {"operator": "lower", "value": "x"}},
            "unknown mapping directive '@case'; supported: @path, @if, @template, @literal",
        ),
        ({"@path": "$.a", "other": 1}, "@path must be the only key of its object"),
        ({"@path": 5}, '@path: expects a path string such as "$.traits.email"'),
        ({"@path": "$.a b"}, "@path: '$.a b' is not a supported path at column 4; use $.a.b, $.a[\"b c\"] or $.a[0]"),
        ({"@if": {"then": 1}}, "@if: needs exactly one condition: exists or blank"),
        ({"@if": {"exists": 1, "when": 2}}, "@if: unknown key 'when'; use exists or blank, then, else"),
        (
            {"@template": "{{ $.traits.x }}"},
            "@template: write {{traits.x}} without '$.': template paths start at the event",
        ),
        ({"@template": "{{traits..x}}"}, "@template: {{traits..x}} is not a field path such as traits.first"),
        (
            {"a": {"b": {"@flatten": {}}}},
            "a.b: unknown mapping directive '@flatten'; supported: @path, @if, @template, @literal",
        ),
    ],
)
def test_outside_the_subset_is_an_error_naming_the_spot(mapping: Any, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        check_mapping(mapping)
    assert str(caught.value) == message


def test_absurdly_deep_or_large_mappings_are_refused() -> None:
    deep: Any = "leaf"
    for _ in range(12):
        deep = {"k": deep}
    with pytest.raises(MappingError, match="nested more than 8 levels deep"):
        check_mapping(deep)
    with pytest.raises(MappingError, match="too large"):
        check_mapping({f"k{index}": [1, 2, 3, 4] for index in range(100)})


def test_segment_metadata_key_beside_a_directive_is_ignored() -> None:
    check_mapping({"@path": "$.userId", "_metadata": {"label": "User Id"}})
