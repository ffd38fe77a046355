"""identify/group → Pendo's metadata API: conversion, coalescing, bounded bodies, requests and Pendo's answers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.config_loader import parse_config
from generator.metadata_config import MetadataSettings
from generator.relay.convert import RejectedEvent
from generator.relay.metadata import (
    Answer,
    Coalescer,
    Destination,
    FieldUpdate,
    RequestBody,
    Row,
    app_base_url,
    build_request,
    classify,
    coalesce,
    convert,
    metadata_url,
    request_bodies,
    value_problem,
)
from tests.support.fake_pendo_metadata import fake_pendo_metadata

VISITOR_AGENT = Destination("visitor", "agent")
VISITOR_CUSTOM = Destination("visitor", "custom")
ACCOUNT_AGENT = Destination("account", "agent")


def metadata(**table: Any) -> MetadataSettings:
    tables = {
        "visitor": {
            "agent": {"email": {"@path": "$.traits.email"}, "name": {"@template": "{{traits.first}} {{traits.last}}"}},
            "custom": {"plan": {"@path": "$.traits.plan"}},
        },
        "account": {"agent": {"name": {"@path": "$.traits.name"}, "seats": {"@path": "$.traits.seats"}}},
        **table,
    }
    config = parse_config({"pendo": {"api_key": "k-1"}, "metadata": tables})
    assert config.metadata is not None
    return config.metadata


IDENTIFY = {
    "type": "identify",
    "messageId": "m-1",
    "userId": "u-1",
    "anonymousId": "an-1",
    "timestamp": "2026-11-28T10:00:00.250Z",
    "traits": {"email": "a@example.com", "first": "Ada", "last": "L", "plan": "pro", "ignored": 1},
    "context": {"groupId": "g-ctx"},
}
GROUP = {
    "type": "group",
    "messageId": "m-2",
    "userId": "u-1",
    "groupId": "g-1",
    "timestamp": "2026-11-28T10:00:01Z",
    "traits": {"name": "Acme", "seats": 12, "parentAccount": {"id": "p-1", "name": "Acme Holding"}},
}


def test_identify_sets_the_visitors_mapped_fields_by_group_and_hands_back_the_account() -> None:
    conversion = convert(IDENTIFY, metadata())
    assert conversion.message_id == "m-1"
    assert conversion.account_id == "g-ctx"
    assert conversion.dropped == ()
    assert [(update.destination, update.record_id, dict(update.values)) for update in conversion.updates] == [
        (VISITOR_AGENT, "u-1", {"email": "a@example.com", "name": "Ada L"}),
        (VISITOR_CUSTOM, "u-1", {"plan": "pro"}),
    ]
    assert {update.timestamp_ms for update in conversion.updates} == {1795860000250}


def test_identify_follows_the_visitor_rule_and_the_presets_account_fallback() -> None:
    anonymous = {key: value for key, value in IDENTIFY.items() if key not in ("userId", "context")}
    conversion = convert({**anonymous, "groupId": "g-top"}, metadata())
    assert {update.record_id for update in conversion.updates} == {"_PENDO_T_an-1"}
    assert conversion.account_id == "g-top"
    with pytest.raises(RejectedEvent, match="userId is not set"):
        convert(anonymous, metadata(), "user_id")


def test_group_sets_account_fields_only() -> None:
    conversion = convert(GROUP, metadata())
    assert [(update.destination, update.record_id, dict(update.values)) for update in conversion.updates] == [
        (ACCOUNT_AGENT, "g-1", {"name": "Acme", "seats": 12})
    ]
    assert conversion.account_id is None


def test_parent_accounts_get_their_fields_and_the_account_is_named_as_pendos_agent_names_it() -> None:
    settings = metadata(parent_account={"agent": {"name": {"@path": "$.traits.parentAccount.name"}}})
    updates = convert(GROUP, settings).updates
    assert [(update.destination, update.record_id, dict(update.values)) for update in updates] == [
        (Destination("parentAccount", "agent"), "p-1", {"name": "Acme Holding"}),
        (ACCOUNT_AGENT, "p-1::g-1", {"name": "Acme", "seats": 12}),
    ]
    without_parent = {**GROUP, "traits": {"name": "Solo"}}
    assert [update.record_id for update in convert(without_parent, settings).updates] == ["g-1"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "track", "event": "x", "userId": "u"}, "neither identify nor group"),
        ({"type": "group", "userId": "u"}, "groupId is not set"),
        ({"type": "group", "groupId": "   "}, "groupId is not set"),
        ({"type": "identify", "traits": {}}, "neither userId nor anonymousId is set"),
        ({"type": "identify", "userId": "u", "timestamp": "yesterday"}, "is not an ISO 8601 time"),
        ("not an object", "must be a JSON object"),
    ],
)
def test_calls_pendo_cannot_take_are_rejected_with_the_reason(event: Any, reason: str) -> None:
    with pytest.raises(RejectedEvent, match=reason):
        convert(event, metadata())


def test_values_json_cannot_carry_or_pendo_cannot_store_are_dropped_with_the_reason() -> None:
    traits = {
        "email": {"nested": "object"},
        "first": "A",
        "last": "B",
        "plan": float("nan"),
    }
    conversion = convert({**IDENTIFY, "traits": traits}, metadata())
    assert [dict(update.values) for update in conversion.updates] == [{"name": "A B"}]
    assert conversion.dropped == (
        "visitor.agent.email: an object; Pendo fields take text, numbers, booleans or lists of them "
        "(map a leaf, e.g. $.traits.a.b)",
        "visitor.custom.plan: not a finite number",
    )


def test_absent_and_null_traits_leave_fields_alone() -> None:
    conversion = convert({**IDENTIFY, "traits": {"email": None}}, metadata())
    # The template still renders (empty names), exactly as Segment's engine would render it.
    assert [dict(update.values) for update in conversion.updates] == [{"name": " "}]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x" * 10_000, None),
        ("x" * 10_001, "text over 10,000 characters"),
        (2**53 - 1, None),
        (2**53, "an integer beyond 2**53, which JSON readers round"),
        (float("inf"), "not a finite number"),
        (True, None),
        ([1, "a", None, False], None),
        (list(range(501)), "a list of 501 items (at most 500)"),
        ([[1]], "a list holding lists or objects; Pendo fields take flat values"),
        (["x" * 10_001], "a list item is text over 10,000 characters"),
        (b"bytes", "a bytes, which JSON cannot carry"),
    ],
)
def test_value_problem(value: Any, problem: str | None) -> None:
    assert value_problem(value) == problem


def _update(
    record: str, values: dict[str, Any], timestamp: int, message: str, destination: Destination = VISITOR_AGENT
) -> FieldUpdate:
    return FieldUpdate(destination, record, values, timestamp, message)


def test_coalescing_keeps_the_last_value_per_field_in_timestamp_order() -> None:
    rows = coalesce(
        [
            _update("u-1", {"plan": "late", "email": "b"}, 300, "m-3"),
            _update("u-2", {"plan": "x"}, 100, "m-4"),
            _update("u-1", {"plan": "early", "name": "N"}, 100, "m-1"),
            _update("u-1", {"plan": "same time, later arrival"}, 300, "m-5"),
            _update("u-1", {"plan": "custom"}, 50, "m-6", VISITOR_CUSTOM),
        ]
    )
    assert [(row.destination, row.record_id, dict(row.values), row.message_ids) for row in rows] == [
        (
            VISITOR_AGENT,
            "u-1",
            {"plan": "same time, later arrival", "email": "b", "name": "N"},
            frozenset({"m-1", "m-3", "m-5"}),
        ),
        (VISITOR_AGENT, "u-2", {"plan": "x"}, frozenset({"m-4"})),
        (VISITOR_CUSTOM, "u-1", {"plan": "custom"}, frozenset({"m-6"})),
    ]


UPDATES = st.lists(
    st.builds(
        _update,
        st.sampled_from(["u-1", "u-2", "u-3"]),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(), min_size=1),
        st.integers(0, 5),
        st.uuids().map(str),
        st.sampled_from([VISITOR_AGENT, VISITOR_CUSTOM]),
    ),
    max_size=30,
)


@settings(deadline=None)
@given(UPDATES)
def test_coalescing_equals_replaying_the_updates_in_timestamp_order(updates: list[FieldUpdate]) -> None:
    expected: dict[tuple[Destination, str], dict[str, Any]] = {}
    for update in sorted(updates, key=lambda update: update.timestamp_ms):  # sorted() is stable: arrival breaks ties
        expected.setdefault((update.destination, update.record_id), {}).update(update.values)
    rows = coalesce(updates)
    assert {(row.destination, row.record_id): dict(row.values) for row in rows} == expected
    assert len(rows) == len(expected)
    assert set().union(*(row.message_ids for row in rows)) == {update.message_id for update in updates}


ROWS = st.lists(
    st.builds(
        Row,
        st.sampled_from([VISITOR_AGENT, ACCOUNT_AGENT]),
        st.text(min_size=1, max_size=40),
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=3000), min_size=1, max_size=12),
        st.just(frozenset({"m"})),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ROWS, st.integers(1, 7), st.integers(16 * 1024, 40 * 1024))
def test_bodies_stay_within_both_bounds_and_lose_no_value(rows: list[Row], max_rows: int, max_bytes: int) -> None:
    bodies = request_bodies(rows, max_rows=max_rows, max_bytes=max_bytes)
    for body in bodies:
        assert 1 <= len(body.rows) <= max_rows
        assert len(body.encoded()) <= max_bytes
        assert {row.destination for row in body.rows} == {body.destination}
        assert json.loads(body.encoded()) == [row.as_json() for row in body.rows]
    sent = [
        (body.destination, row.record_id, name, value)
        for body in bodies
        for row in body.rows
        for name, value in row.values.items()
    ]
    given_values = [(row.destination, row.record_id, name, value) for row in rows for name, value in row.values.items()]
    assert sorted(sent, key=repr) == sorted(given_values, key=repr)


def test_a_row_too_large_for_one_body_is_split_by_field() -> None:
    row = Row(VISITOR_AGENT, "u-1", {f"f{index}": "x" * 9000 for index in range(5)}, frozenset({"m-1"}))
    bodies = request_bodies([row], max_rows=100, max_bytes=16 * 1024)
    assert [[list(part.values) for part in body.rows] for body in bodies] == [
        [["f0"]],
        [["f1"]],
        [["f2"]],
        [["f3"]],
        [["f4"]],
    ]
    for body in bodies:
        assert body.record_ids == ("u-1",) and body.message_ids == {"m-1"} and len(body.encoded()) <= 16 * 1024


def test_a_field_whose_row_alone_is_over_max_bytes_is_dropped_at_conversion() -> None:
    settings = metadata(visitor={"agent": {"tags": {"@path": "$.traits.tags"}, "email": {"@path": "$.traits.email"}}})
    small = parse_config({"pendo": {"api_key": "k"}, "metadata": {**settings.model_dump(), "max_bytes": 16 * 1024}})
    assert small.metadata is not None
    # Control characters take six bytes of JSON each: 2 x 9,000 of them cannot fit in 16 KB.
    conversion = convert({**IDENTIFY, "traits": {"tags": ["\u0001" * 9000] * 2, "email": "e"}}, small.metadata)
    assert [dict(update.values) for update in conversion.updates] == [{"email": "e"}]
    assert conversion.dropped == ("visitor.agent.tags: its row is over max_bytes (16384)",)


def test_the_coalescer_holds_each_record_for_its_window() -> None:
    coalescer = Coalescer(window_ms=1000, max_rows=500, max_bytes=1024 * 1024)
    coalescer.add(_update("u-1", {"a": 1}, 10, "m-1"), now_ms=0)
    coalescer.add(_update("u-2", {"a": 2}, 10, "m-2"), now_ms=600)
    coalescer.add(_update("u-1", {"a": 3}, 20, "m-3"), now_ms=900)
    assert coalescer.due(999) == [] and len(coalescer) == 3
    [body] = coalescer.due(1000)
    assert [row.as_json() for row in body.rows] == [{"visitorId": "u-1", "values": {"a": 3}}]
    assert body.message_ids == {"m-1", "m-3"}
    assert len(coalescer) == 1
    [rest] = coalescer.drain()
    assert rest.record_ids == ("u-2",) and len(coalescer) == 0
    assert Coalescer.for_settings(metadata()).window_ms == 5000


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("io", "https://app.pendo.io/api/v1/metadata/visitor/custom/value?create=true"),
        ("eu", "https://app.eu.pendo.io/api/v1/metadata/visitor/custom/value?create=true"),
        ("jp", "https://app.jpn.pendo.io/api/v1/metadata/visitor/custom/value?create=true"),
    ],
)
def test_urls_per_region(region: str, expected: str) -> None:
    assert metadata_url(app_base_url(region), VISITOR_CUSTOM, create=True) == expected
    assert metadata_url(app_base_url(region) + "/", VISITOR_CUSTOM, create=False) == expected.removesuffix(
        "?create=true"
    )


def test_the_request_carries_the_integration_key_and_the_rows() -> None:
    body = RequestBody(ACCOUNT_AGENT, (Row(ACCOUNT_AGENT, "g-1", {"name": "Ünïcode"}, frozenset({"m"})),))
    request = build_request(body, base_url="https://app.pendo.io", integration_key="ik", create=False)
    assert request.method == "POST"
    assert request.url == "https://app.pendo.io/api/v1/metadata/account/agent/value"
    assert request.headers == {"x-pendo-integration-key": "ik", "content-type": "application/json"}
    assert json.loads(request.content) == [{"accountId": "g-1", "values": {"name": "Ünïcode"}}]


BODY = RequestBody(
    VISITOR_CUSTOM,
    (
        Row(VISITOR_CUSTOM, "u-1", {"plan": "pro", "tier": 2}, frozenset({"m-1"})),
        Row(VISITOR_CUSTOM, "u-2", {"plan": "free"}, frozenset({"m-2"})),
    ),
)


@pytest.mark.parametrize(
    ("status", "text", "retry_after", "verdict", "details"),
    [
        (200, '{"total":2,"updated":2,"failed":0,"missing":[]}', None, "delivered", {}),
        (200, "", None, "delivered", {}),
        (200, "not json", None, "delivered", {}),
        (
            200,
            '{"total":2,"updated":1,"failed":1,"missing":["u-2"]}',
            None,
            "partly_failed",
            {"failed_ids": ("u-2",)},
        ),
        (429, "slow down", "7", "retry", {"retry_after_seconds": 7.0}),
        (429, "slow down", "Wed, 21 Oct 2026 07:28:00 GMT", "retry", {"retry_after_seconds": None}),
        (500, "oops", None, "retry", {}),
        (503, "", "-1", "retry", {"retry_after_seconds": None}),
        (408, "", None, "retry", {}),
        (401, "bad key", None, "misconfigured", {}),
        (404, "", None, "misconfigured", {}),
        (400, "unknown custom field(s) for visitor: tier", None, "unknown_fields", {"unknown_fields": ("tier",)}),
        (400, "Field 'plan' does not exist in group custom", None, "unknown_fields", {"unknown_fields": ("plan",)}),
        (400, "values must be an object", None, "split", {}),
        (413, "too large", None, "split", {}),
    ],
)
def test_pendos_answers_are_classified(
    status: int, text: str, retry_after: str | None, verdict: str, details: dict[str, Any]
) -> None:
    answer = classify(status, text, BODY, retry_after)
    assert answer.verdict == verdict
    for name, value in details.items():
        assert getattr(answer, name) == value
    if verdict == "split":
        assert answer.reason == f"HTTP {status}: {text}"
        single, _ = BODY.halves()
        assert classify(status, text, single) == Answer("dead_letter", answer.reason)


def test_halves_isolate_one_row_in_a_few_steps() -> None:
    body = RequestBody(
        VISITOR_AGENT, tuple(Row(VISITOR_AGENT, f"u-{index}", {"a": index}, frozenset()) for index in range(5))
    )
    first, second = body.halves()
    assert (first.record_ids, second.record_ids) == (("u-0", "u-1"), ("u-2", "u-3", "u-4"))
    assert [part.record_ids for part in first.halves()] == [("u-0",), ("u-1",)]


def test_a_body_without_refused_fields_keeps_the_rest() -> None:
    rest = BODY.without_fields(["tier"])
    assert rest is not None
    assert [row.as_json() for row in rest.rows] == [
        {"visitorId": "u-1", "values": {"plan": "pro"}},
        {"visitorId": "u-2", "values": {"plan": "free"}},
    ]
    assert BODY.without_fields(["plan", "tier"]) is None


def _send(client: httpx.Client, body: RequestBody, base_url: str, key: str, create: bool = True) -> Any:
    request = build_request(body, base_url=base_url, integration_key=key, create=create)
    response = client.post(request.url, content=request.content, headers=dict(request.headers))
    return classify(response.status_code, response.text, body, response.headers.get("retry-after"))


def test_against_the_fake_api_end_to_end() -> None:
    settings = metadata()
    events = [
        IDENTIFY,
        {**IDENTIFY, "messageId": "m-3", "timestamp": "2026-11-28T10:00:05Z", "traits": {"plan": "enterprise"}},
        {**IDENTIFY, "messageId": "m-0", "timestamp": "2026-11-28T09:00:00Z", "traits": {"plan": "trial"}},
        GROUP,
    ]
    coalescer = Coalescer.for_settings(settings)
    for event in events:
        for update in convert(event, settings).updates:
            coalescer.add(update, now_ms=0)
    bodies = coalescer.due(5000)
    with fake_pendo_metadata(custom_fields={"visitor": {"plan"}}) as fake, httpx.Client(timeout=5) as client:
        answers = [_send(client, body, fake.base_url, fake.integration_key) for body in bodies]
        assert [answer.verdict for answer in answers] == ["delivered", "delivered", "delivered"]
        # The latest identify has no names, so its template renders " " (as Segment's engine does) and wins;
        # the 09:00 identify arrived last but is the oldest, so its plan loses.
        assert fake.values("visitor", "u-1", "agent") == {"email": "a@example.com", "name": " "}
        assert fake.values("visitor", "u-1", "custom") == {"plan": "enterprise"}
        assert fake.values("account", "g-1", "agent") == {"name": "Acme", "seats": 12}
        assert [(request.kind, request.group, request.create) for request in fake.requests] == [
            ("visitor", "agent", True),
            ("visitor", "custom", True),
            ("account", "agent", True),
        ]


def test_the_fakes_refusals_reach_the_right_verdicts() -> None:
    with fake_pendo_metadata(custom_fields={"visitor": {"plan"}}) as fake, httpx.Client(timeout=1) as client:
        unknown = _send(client, BODY, fake.base_url, fake.integration_key)
        assert (unknown.verdict, unknown.unknown_fields) == ("unknown_fields", ("tier",))
        rest = BODY.without_fields(unknown.unknown_fields)
        assert rest is not None and _send(client, rest, fake.base_url, fake.integration_key).verdict == "delivered"
        assert fake.values("visitor", "u-2", "custom") == {"plan": "free"}

        # Without create=true Pendo updates only records it knows (u-1 and u-2 were created above).
        assert _send(client, rest, fake.base_url, fake.integration_key, create=False).verdict == "delivered"
        stranger = RequestBody(VISITOR_CUSTOM, (Row(VISITOR_CUSTOM, "u-9", {"plan": "x"}, frozenset({"m"})),))
        missed = _send(client, stranger, fake.base_url, fake.integration_key, create=False)
        assert (missed.verdict, missed.failed_ids) == ("partly_failed", ("u-9",))

        assert _send(client, rest, fake.base_url, "wrong key").verdict == "misconfigured"
        for mode, verdict in (("429", "retry"), ("500", "retry"), ("400", "split")):
            fake.mode = mode
            assert _send(client, rest, fake.base_url, fake.integration_key).verdict == verdict
        fake.mode = "hang"
        with pytest.raises(httpx.TimeoutException):
            _send(client, rest, fake.base_url, fake.integration_key)
        fake.mode = "ok"
        assert _send(client, rest, fake.base_url, fake.integration_key).verdict == "delivered"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


WITH_PARENT = metadata(parent_account={"agent": {"name": {"@path": "$.traits.parentAccount.name"}}})


# Examples take uneven time on a shared machine: no per-example deadline.
@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["identify", "group"]),
    st.dictionaries(st.sampled_from(["email", "first", "last", "plan", "name", "seats", "parentAccount"]), JSON_VALUES),
    JSON_VALUES,
    JSON_VALUES,
)
def test_any_json_traits_give_storable_rows_or_a_reason_never_a_crash(
    kind: str, traits: dict[str, Any], user_id: Any, group_id: Any
) -> None:
    event = {"type": kind, "userId": user_id, "anonymousId": "an", "groupId": group_id, "traits": traits}
    try:
        conversion = convert(event, WITH_PARENT)
    except RejectedEvent:
        assert kind == "group"  # identify always has the anonymousId to fall back on
        return
    for update in conversion.updates:
        assert update.values and all(value_problem(value) is None for value in update.values.values())
    rows = coalesce(conversion.updates)
    for body in request_bodies(rows, max_rows=WITH_PARENT.max_rows, max_bytes=WITH_PARENT.max_bytes):
        assert json.loads(body.encoded()) == [row.as_json() for row in body.rows]
    for reason in conversion.dropped:
        assert re.fullmatch(r"(visitor|account|parentAccount)\.(agent|custom)\.\w+: .+", reason), reason
