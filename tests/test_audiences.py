"""Engage audiences → Pendo Segments, without a relay process: config, recognition, planning, answers, the outbox."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from generator.audiences_config import AudienceSettings
from generator.config_loader import parse_config
from generator.errors import ConfigError
from generator.fql import parse_fql
from generator.relay.audience_store import ClaimedMembership, MembershipOutcome
from generator.relay.audiences import (
    AUDIENCES,
    Change,
    Operation,
    Patch,
    plan_patches,
    read_patch_answer,
)
from generator.relay.intake import convert
from generator.relay.outbox import Outbox
from generator.relay.pg_outbox import PostgresOutbox
from tests.support.outboxes import table_rows

NOW = "2026-12-04T10:00:00Z"


def settings(**values: Any) -> AudienceSettings:
    config = parse_config({"pendo": {"api_key": "k-1"}, "audiences": values})
    assert config.audiences is not None
    return config.audiences


def engage_identify(key: str, member: Any, user: Any = "u-1", message: str = "m-1", **extra: Any) -> dict[str, Any]:
    traits = {} if member is None else {key: member}
    event = {
        "type": "identify",
        "messageId": message,
        "userId": user,
        "timestamp": NOW,
        "traits": traits,
        "context": {"personas": {"computation_class": "audience", "computation_key": key, "computation_id": "aud_1"}},
    }
    return {**event, **extra}


def engage_track(key: str, member: bool, user: str = "u-1", message: str = "t-1") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Audience Entered" if member else "Audience Exited",
        "messageId": message,
        "userId": user,
        "timestamp": NOW,
        "properties": {key: member, "audience_key": key},
        "context": {"personas": {"computation_class": "audience", "computation_key": key}},
    }


# Config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"allow": ["vip"], "deny": ["vip"]}, "audiences: 'vip' is in both allow and deny; keep it in one"),
        ({"segments": {"vip": "has space"}}, "audiences.segments: vip = 'has space' is not a Pendo segment id"),
        ({"segments": {"a": "s1", "b": "s1"}}, "segment 's1' is given to more than one audience"),
        ({"max_visitors": 1001}, "audiences.max_visitors: must be at most 1000, got 1001"),
        ({"max_visitors": 0}, "audiences.max_visitors: must be at least 1, got 0"),
        ({"visitor_id": "none"}, "audiences.visitor_id: 'none' is not one of user_id, user_id_or_anonymous"),
        ({"deny": ["vip"], "segments": {"vip": "s1"}}, "[audiences.segments] names 'vip', which allow/deny keeps out"),
        ({"allow": ["has space"]}, "audiences.allow: 'has space' is not an Engage audience key"),
        ({"names": {"vip": ""}}, "audiences.names: vip = '': a segment name must be 1 to 200 characters"),
        ({"relay_url": "http://relay"}, "audiences.relay_url: 'http://relay' is not the relay's https address"),
        ({"segmnets": {}}, "audiences.segmnets: unknown key; did you mean 'segments'?"),
    ],
)
def test_a_bad_audiences_table_names_the_field_and_the_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**values)
    assert message in str(raised.value)


def test_audiences_are_off_unless_the_table_is_there() -> None:
    assert parse_config({"pendo": {"api_key": "k-1"}}).audiences is None
    defaults = settings()
    assert (defaults.visitor_id, defaults.max_visitors, defaults.create) == ("user_id", 1000, True)
    assert defaults.sends("anything")
    strict = settings(create=False, segments={"vip": "seg-1"}, deny=["churned"])
    assert strict.sends("vip") and not strict.sends("other") and not strict.sends("churned")


# Recognising Engage's calls ---------------------------------------------------------------------------------


def converted(events: list[Any], audiences: AudienceSettings | None = None) -> Any:
    return convert(events, "user_id_or_anonymous", parse_fql('type = "track"'), None, audiences or settings())


def test_both_engage_shapes_become_memberships_and_nothing_else() -> None:
    result = converted(
        [
            engage_identify("vip", True),
            engage_track("vip", False, message="t-2"),
            {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": "o-1", "timestamp": NOW},
        ]
    )
    assert result.rejected == []
    memberships = [json.loads(event.body) for event in result.events if event.destination == AUDIENCES]
    assert memberships == [
        {"audience": "vip", "visitor": "u-1", "member": True},
        {"audience": "vip", "visitor": "u-1", "member": False},
    ]
    assert [event.destination for event in result.events] == [AUDIENCES, AUDIENCES, "track"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (engage_identify("vip", None), "traits.vip is missing; Engage sends true (entered) or false (exited)"),
        (engage_identify("vip", "yes"), 'traits.vip is "yes"; Engage sends true'),
        (engage_identify("vip", True, user=None), "userId is not set ([audiences] visitor_id = 'user_id')"),
        (
            {**engage_track("vip", True), "properties": {}},
            "properties.vip is missing; Engage sends true (entered) or false (exited)",
        ),
        ({**engage_track("vip", True), "event": "Audience Renamed"}, "must be Audience Entered or Audience Exited"),
        (
            {**engage_identify("vip", True), "context": {"personas": {"computation_class": "audience"}}},
            "computation_key (the audience key) is missing",
        ),
        ({**engage_identify("vip", True), "timestamp": "2020-01-01T00:00:00Z"}, "more than 7 days old"),
        (engage_identify("a/../b", True), "computation_key 'a/../b' is not an Engage audience key"),
        (engage_identify("vip", True, user="u\x00"), "holds a NUL character"),
    ],
)
def test_an_engage_call_without_visitor_or_membership_is_refused_with_the_reason(
    event: dict[str, Any], reason: str
) -> None:
    result = converted([engage_identify("ok", True, message="fine"), event])
    assert len(result.events) == 1
    [rejected] = result.rejected
    assert rejected["index"] == 1 and reason in rejected["reason"], rejected


def test_denied_audiences_are_skipped_and_the_visitor_rule_is_the_audiences_own() -> None:
    audiences = settings(deny=["internal"], visitor_id="user_id_or_anonymous")
    result = converted(
        [engage_identify("internal", True), engage_identify("vip", True, user=None, anonymousId="an-1", message="x")],
        audiences,
    )
    assert result.skipped == 1
    [event] = result.events
    assert json.loads(event.body)["visitor"] == "_PENDO_T_an-1"


def test_without_the_table_an_engage_identify_is_refused_as_before() -> None:
    result = convert([engage_identify("vip", True)], "user_id", parse_fql('type = "track"'))
    assert result.events == [] and "not track" in result.rejected[0]["reason"]


# Planning ----------------------------------------------------------------------------------------------------


def test_a_visitor_is_in_one_operation_at_its_newest_membership() -> None:
    changes = [Change("a", True, 1), Change("a", False, 2), Change("a", True, 3), Change("b", False, 1)]
    [patch] = plan_patches(changes, 1000)
    assert json.loads(patch.content()) == {
        "patch": [
            {"op": "add", "path": "/visitors", "value": ["a"]},
            {"op": "remove", "path": "/visitors", "value": ["b"]},
        ]
    }


def test_no_request_carries_more_than_max_visitors() -> None:
    changes = [Change(f"v{index}", index % 3 == 0, 1) for index in range(2500)]
    patches = plan_patches(changes, 1000)
    assert [len(patch.changes) for patch in patches] == [1000, 1000, 500]
    assert sorted(change.visitor for patch in patches for change in patch.changes) == sorted(
        change.visitor for change in changes
    )


# Reading answers ---------------------------------------------------------------------------------------------


def patch_of(adds: list[str], removes: list[str]) -> Patch:
    return Patch(
        (
            Operation("add", tuple(Change(visitor, True, 1) for visitor in adds)),
            Operation("remove", tuple(Change(visitor, False, 1) for visitor in removes)),
        )
    )


def test_each_operation_gets_the_verdict_of_its_own_multistatus_item() -> None:
    patch = patch_of(["a", "b"], ["c"])
    text = json.dumps(
        {
            "multistatus": [
                {"status": 200, "message": "ok", "operation": {"op": "add", "path": "/visitors"}},
                {"status": 400, "message": "bad visitor", "operation": {"op": "remove", "path": "/visitors"}},
            ]
        }
    )
    answer = read_patch_answer(207, text, patch)
    assert [(result.operation.op, result.verdict) for result in answer.results] == [("add", "done"), ("remove", "dead")]
    assert "bad visitor" in answer.results[1].reason
    busy = read_patch_answer(200, json.dumps({"multistatus": [{"status": 200}, {"status": 409}]}), patch)
    assert [result.verdict for result in busy.results] == ["done", "retry"]


@pytest.mark.parametrize(("status", "verdict"), [(500, "retry"), (409, "retry"), (429, "retry"), (400, "dead")])
def test_a_whole_request_status_covers_every_operation(status: int, verdict: str) -> None:
    answer = read_patch_answer(status, "nope", patch_of(["a"], ["b"]))
    assert {result.verdict for result in answer.results} == {verdict}


# The outbox: one membership per audience and visitor, the last accepted ---------------------------------------


def store(outbox: Outbox, events: list[dict[str, Any]]) -> list[bool]:
    return outbox.add_many(converted(events).events)


def settle_all(outbox: Outbox, claimed: list[ClaimedMembership], verdict: str = "done", **fields: Any) -> None:
    outbox.settle_memberships([MembershipOutcome(item, verdict, **fields) for item in claimed])  # type: ignore[arg-type]


def test_the_last_membership_accepted_wins_across_batches_and_replays(new_outbox: Callable[[], Outbox]) -> None:
    outbox = new_outbox()
    assert store(outbox, [engage_identify("vip", True, message="1"), engage_track("vip", False, message="2")]) == [
        True,
        True,
    ]
    store(outbox, [engage_identify("vip", True, message="3"), engage_identify("vip", True, user="u-2", message="4")])
    assert store(outbox, [engage_track("vip", False, message="2")]) == [False]  # a replay changes nothing
    claimed = outbox.claim_memberships("vip", 10, 60)
    assert sorted((item.visitor, item.member) for item in claimed) == [("u-1", True), ("u-2", True)]
    assert outbox.claim_memberships("vip", 10, 60) == []  # leased
    assert outbox.stats()["pending"] == 0 and outbox.stats()["received"] == 4
    # Accepted while the first is in flight: due again once that one's outcome is written, with the newer value.
    store(outbox, [engage_track("vip", False, message="5")])
    assert outbox.claim_memberships("vip", 10, 60) == []
    settle_all(outbox, claimed)
    [again] = outbox.claim_memberships("vip", 10, 60)
    assert (again.visitor, again.member) == ("u-1", False)
    settle_all(outbox, [again])
    assert outbox.claim_memberships("vip", 10, 60) == []
    [row] = outbox.audience_rows()
    assert (row.audience, row.added, row.removed, row.pending) == ("vip", 2, 1, 0)


def test_retries_wait_and_dead_letters_name_the_visitor(new_outbox: Callable[[], Outbox]) -> None:
    outbox = new_outbox()
    store(outbox, [engage_identify("vip", True, message="1"), engage_identify("vip", True, user="u-2", message="2")])
    first, second = sorted(outbox.claim_memberships("vip", 10, 60), key=lambda item: item.visitor)
    outbox.settle_memberships(
        [
            MembershipOutcome(first, "retry", delay_seconds=60, reason="add: 409 busy"),
            MembershipOutcome(second, "dead", status=400, reason="add: 400 no such visitor"),
        ]
    )
    assert outbox.claim_memberships("vip", 10, 60) == []
    [row] = outbox.audience_rows()
    assert (row.failed, row.pending, row.last_error) == (1, 1, "add: 400 no such visitor")
    [letter] = outbox.dead_letters(10)
    assert letter["messageId"] == "audience:vip:u-2:v1" and letter["status"] == 400


def test_a_reopened_outbox_hands_back_what_was_leased(new_outbox: Callable[[], Outbox]) -> None:
    outbox = new_outbox()
    store(outbox, [engage_identify("vip", True)])
    assert len(outbox.claim_memberships("vip", 10, 300)) == 1
    outbox.close()
    # The fixture closes what it opened; this one is closed already.
    outbox.close = lambda: None  # type: ignore[method-assign]
    reopened = new_outbox()
    assert [item.visitor for item in reopened.claim_memberships("vip", 10, 300)] == ["u-1"]


def test_one_creation_per_audience_and_the_first_id_kept(new_outbox: Callable[[], Outbox]) -> None:
    outbox = new_outbox()
    assert outbox.stored_segment("vip") is None
    assert outbox.begin_creation("vip", 60) is True
    assert outbox.begin_creation("vip", 60) is False  # someone is creating it
    outbox.creation_failed("vip", "HTTP 500")
    assert outbox.begin_creation("vip", 60) is True
    assert outbox.record_segment("vip", "seg-1") == "seg-1"
    assert outbox.record_segment("vip", "seg-2") == "seg-1"
    assert outbox.begin_creation("vip", 60) is False
    assert outbox.stored_segment("vip") == "seg-1"


def test_two_relays_racing_to_create_one_segment_have_one_winner(postgres_cluster: Any) -> None:
    from tests.support.outboxes import fresh_database

    url = fresh_database(postgres_cluster)
    relays = [PostgresOutbox(url) for _ in range(4)]
    try:
        for round_ in range(10):
            audience = f"race_{round_}"
            won: list[bool] = []
            start = threading.Barrier(len(relays))

            def race(
                relay: PostgresOutbox, audience: str = audience, start: threading.Barrier = start, won: list[bool] = won
            ) -> None:
                start.wait()
                won.append(relay.begin_creation(audience, 60))

            threads = [threading.Thread(target=race, args=(relay,)) for relay in relays]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(won) == [False, False, False, True]
        # A relay that dies while creating hands the creation back at once.
        relays[0].close()
        survivors = relays[1:]
        assert survivors[0].begin_creation("orphan", 600) is True
        assert relays[2].begin_creation("orphan", 600) is False
        survivors[0].close()
        time.sleep(1.2)  # the others look for gone relays at most once a second
        assert relays[2].begin_creation("orphan", 600) is True
    finally:
        for relay in relays:
            relay.close()
    rows = table_rows(relays[3], "SELECT count(*) FROM audience_segments")
    assert rows == [(11,)]
