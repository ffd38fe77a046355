"""FQL subscriptions: parse errors word for word; the Python reference against Segment's own engine, and
compiled JavaScript against the Python reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page

from generator.fql import FqlError, evaluate_fql, parse_fql, segment_differences
from tests.support.compiled_js import predicates_script
from tests.support.segment_engine import run_segment_engine

EVENTS: list[dict[str, Any]] = [
    {"type": "track", "event": "Order Completed", "properties": {"plan": "pro", "total": 42, "paid": True}},
    {"type": "track", "event": "Report Viewed", "properties": {"plan": "free", "total": "42"}, "userId": "5"},
    {"type": "track", "event": "Weekly Report", "properties": {"total": 7.5, "tags": ["a"]}, "context": {}},
    {"type": "identify", "userId": "u1", "traits": {"role": "internal", "email": "a@b.c", "plan": None}},
    {"type": "identify", "userId": "u2", "traits": {"role": "admin"}, "context": {"page": {"path": "/pricing"}}},
    {"type": "group", "groupId": "g1", "traits": {"seats": 10}},
    {"type": "page", "name": "Pricing", "properties": {"url": "https://x.example/p"}},
    {"type": "track", "event": "", "properties": {"plan": "pro", "__proto__": {"plan": "x"}}},
    {"type": "track", "properties": None, "traits": "not an object"},
    {},
]

QUERIES = [
    'type = "track"',
    'type != "track"',
    'event = "Order Completed"',
    'event != "Order Completed"',
    'type = "track" and event = "Order Completed"',
    'type = "identify" or type = "group"',
    'not type = "track"',
    'not (type = "track" and properties.plan = "pro")',
    'contains(event, "Report")',
    '!contains(event, "Report")',
    'match(event, "Report*")',
    'match(event, "*Report")',
    '!match(event, "Report*")',
    'properties.plan = "pro"',
    'properties.plan != "pro"',
    "properties.total = 42",
    "properties.total != 42",
    'properties.total = "42"',
    "properties.total > 10",
    "properties.total <= 7.5",
    "properties.total >= 8",
    "properties.total < 100",
    "properties.paid = true",
    "properties.paid = false",
    "properties.paid != true",
    'traits.role != "internal"',
    "traits.plan = null",
    "traits.plan != null",
    "traits.email != null",
    'context.page.path = "/pricing"',
    "context.page.path != null",
    "userId = 5",
    'userId = "u1" or userId = "u2"',
    'name = "Pricing"',
    "properties.__proto__ = null",
    "properties.tags = null",
    '(type = "track" or type = "page") and (properties.plan = "pro" or name = "Pricing")',
    'type = "track" and not (contains(event, "Report") or event = "")',
    '!contains(properties.plan, "pr")',
    '!match(name, "*ing")',
    'contains(userId, "u")',
    'match(context.page.path, "/pri*")',
    'properties.total != "42"',
    "traits.seats = 10",
    'properties.plan = "pro" and !contains(event, "x")',
    'userId != "5"',
    "event = null",
    "event != null",
    'traits.role = "admin" or (type = "group" and (traits.seats > 5 or traits.seats < 0))',
    "properties.tags.length = 1",
    "properties.plan.length = 3",
    "traits.email.length > 3",
    "properties.constructor != null",
]

# Where this tool deliberately parts from Segment's engine (@segment/destination-subscriptions, which
# Segment's action destinations evaluate subscriptions with), and why. Everything else must agree.
SEGMENT_DIFFERENCES = {
    'not type = "track"': "Segment's parser skips the word not, so the condition is not negated",
    'not (type = "track" and properties.plan = "pro")': "Segment's parser skips the word not",
    'type = "track" and not (contains(event, "Report") or event = "")': "Segment's parser skips the word not",
    "properties.paid != true": "Segment compares a boolean with the text 'true', so != true/false always holds",
    "properties.__proto__ = null": "only an object's own keys are fields here, never its prototype",
    "properties.constructor != null": "only an object's own keys are fields here, never its prototype",
    "event = null": "Segment compares event with the text 'null' instead of testing that it is missing",
    "event != null": "Segment compares event with the text 'null' instead of testing that it is present",
    'traits.role = "admin" or (type = "group" and (traits.seats > 5 or traits.seats < 0))': (
        "Segment's parser fails on nested parentheses"
    ),
}


@pytest.mark.browser
def test_compiled_predicates_agree_with_the_python_reference(page: Page) -> None:
    page.set_content("<!doctype html><title>fql</title>")
    page.add_script_tag(content=predicates_script(QUERIES))
    # JSON.parse, as analytics.js's own payloads would, keeps "__proto__" an ordinary own key.
    in_browser = page.evaluate(
        "(json) => { const events = JSON.parse(json); "
        "return window.compiledPredicates.map((f) => events.map((e) => f(e))); }",
        json.dumps(EVENTS),
    )
    in_python = [[evaluate_fql(parse_fql(query), event) for event in EVENTS] for query in QUERIES]
    disagreements = [
        (query, EVENTS[column], browser_row[column])
        for query, browser_row, python_row in zip(QUERIES, in_browser, in_python, strict=True)
        for column in range(len(EVENTS))
        if browser_row[column] != python_row[column]
    ]
    assert disagreements == []


def test_the_reference_agrees_with_segments_engine_except_where_documented() -> None:
    differing = {}
    for query in QUERIES:
        run = run_segment_engine(EVENTS, subscribe=query)
        ours = [evaluate_fql(parse_fql(query), event) for event in EVENTS]
        segments = run.subscribe_error or [result["matches"] for result in run.results]
        if segments != ours:
            differing[query] = segments
    assert sorted(differing) == sorted(SEGMENT_DIFFERENCES), "update SEGMENT_DIFFERENCES with the reason"


def test_the_differences_import_segment_points_out_are_exactly_those_segments_engine_shows() -> None:
    flagged = sorted(query for query in QUERIES if segment_differences(query))
    assert flagged == sorted(SEGMENT_DIFFERENCES)


@pytest.mark.parametrize(
    ("query", "matching_events"),
    [
        ('type = "track"', [0, 1, 2, 7, 8]),
        ('match(event, "Report*")', [1]),
        ('match(event, "*Report")', [2]),
        ("properties.total = 42", [0]),
        ('properties.total = "42"', [1]),
        ('properties.plan != "pro"', [1, 2, 3, 4, 5, 6, 8, 9]),
        ("traits.plan = null", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("traits.email != null", [3]),
        ("userId = 5", [1]),
        ("properties.paid = true", [0]),
        ("properties.__proto__ = null", [0, 1, 2, 3, 4, 5, 6, 8, 9]),
        ('type = "track" and not (contains(event, "Report") or event = "")', [0, 8]),
    ],
)
def test_reference_semantics_follow_segment(query: str, matching_events: list[int]) -> None:
    node = parse_fql(query)
    assert [index for index, event in enumerate(EVENTS) if evaluate_fql(node, event)] == matching_events


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty subscription; write e.g. type = \"track\" at column 1 of ''"),
        ("type", "expected an operator (=, !=, <, <=, >, >=), found the end at column 5 of 'type'"),
        (
            'type = "a" and event = "b" or event = "c"',
            "'and' and 'or' mixed without parentheses; add them at column 28 of "
            '\'type = "a" and event = "b" or event = "c"\'',
        ),
        ("event = 'x'", "bad string \"'x'\": use double quotes at column 9 of \"event = 'x'\""),
        (
            "foo = 1",
            "unknown field 'foo'; use type, event, name, userId, properties.*, traits.*, context.* at column 1 of "
            "'foo = 1'",
        ),
        (
            'match(event, "a*b")',
            'match() takes "prefix*" or "*suffix" (as in Segment); use contains() for the middle at column 14 of '
            "'match(event, \"a*b\")'",
        ),
        ('properties.x < "a"', "< compares numbers only at column 16 of 'properties.x < \"a\"'"),
        ("type = 1", "type compares with a string such as \"track\" at column 1 of 'type = 1'"),
        ('event = "x', "bad string '\"x': close the string with a double quote at column 9 of 'event = \"x'"),
        ("traits = 1", "name a field under traits, e.g. traits.plan at column 1 of 'traits = 1'"),
        ('(type = "x"', "expected ')', found the end at column 12 of '(type = \"x\"'"),
        ('contains(type, "x")', "contains() does not apply to type at column 10 of 'contains(type, \"x\")'"),
        (
            'type == "x"',
            "expected a value (\"text\", number, true, false, null), found '=' at column 7 of 'type == \"x\"'",
        ),
        ('type = "a" # b', "unexpected character '#' at column 12 of 'type = \"a\" # b'"),
        ('!type = "a"', "'!' goes only before contains( or match(; use 'not' otherwise at column 2 of '!type = \"a\"'"),
        ('event.name = "a"', "event has no sub-fields at column 1 of 'event.name = \"a\"'"),
        ("properties.x > null", "> compares numbers only at column 16 of 'properties.x > null'"),
        (
            'type = "a" and',
            "expected a field such as type, event or properties.plan, found the end at column 15 of 'type = \"a\" and'",
        ),
    ],
)
def test_outside_the_subset_is_an_error_pointing_at_the_column(query: str, message: str) -> None:
    with pytest.raises(FqlError) as caught:
        parse_fql(query)
    assert str(caught.value) == message


def test_backslash_escapes_a_character_in_a_field_name() -> None:
    node = parse_fql('properties.a\\ b = "x"')
    assert evaluate_fql(node, {"properties": {"a b": "x"}})
