"""Hypothesis strategies for valid configs, as TOML text (written with the project's own TOML writer)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from generator.config import GUIDE_EVENT_PROPERTIES, GuideEventNames
from generator.regions import REGIONS
from generator.toml_writer import table

FIELDS_BY_ACTION = {
    "identify": ("visitorId", "visitorData", "accountId"),
    "group": ("visitorId", "accountId", "accountData", "parentAccountData"),
    "track": ("event", "metadata"),
    "page": ("url",),
}
TARGETS = ("es2015", "es2017", "es2020", "esnext")
text = st.text(max_size=20)
key_text = st.text(min_size=1, max_size=12)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "$." + ".".join(parts))
fql_fields = st.one_of(
    st.sampled_from(["event", "name", "userId"]),
    st.tuples(st.sampled_from(["properties", "traits", "context"]), names).map(".".join),
)
fql_strings = st.text(alphabet=st.characters(blacklist_characters='"', blacklist_categories=("Cs", "Cc")), max_size=12)


def _comparison(field: str, operator: str, value: str) -> str:
    return f"{field} {operator} {value}"


fql_atoms = st.one_of(
    st.sampled_from(["track", "identify", "group", "page"]).map(lambda kind: f'type = "{kind}"'),
    st.builds(_comparison, fql_fields, st.sampled_from(["=", "!="]), fql_strings.map(lambda s: f'"{s}"')),
    st.builds(_comparison, fql_fields, st.sampled_from(["=", "!="]), st.sampled_from(["null", "true", "false", "3"])),
    st.builds(
        _comparison,
        fql_fields.filter(lambda f: "." in f),
        st.sampled_from(["<", ">=", "="]),
        st.integers(-5, 5).map(str),
    ),
    st.builds(lambda f, s: f'contains({f}, "{s}")', fql_fields, fql_strings),
    st.builds(lambda f, s: f'match({f}, "{s}*")', fql_fields, fql_strings.filter(lambda s: "*" not in s and s)),
)
fql = st.recursive(
    fql_atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b, op: f"({a}) {op} ({b})", inner, inner, st.sampled_from(["and", "or"])),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=4,
)
mapping_leaves = st.one_of(
    text,
    st.integers(-1000, 1000),
    st.booleans(),
    paths.map(lambda path: {"@path": path}),
    st.lists(names, min_size=1, max_size=2).map(lambda parts: {"@template": "x {{" + ".".join(parts) + "}} y"}),
)
mappings = st.recursive(
    mapping_leaves,
    lambda inner: st.one_of(
        # A key starting with @ is a directive, not an object key.
        st.dictionaries(key_text.filter(lambda key: not key.startswith("@")), inner, max_size=3),
        st.lists(inner, max_size=3),
        st.builds(
            lambda cond, then, other: {"@if": {"exists": cond, "then": then, "else": other}},
            paths.map(lambda path: {"@path": path}),
            inner,
            inner,
        ),
    ),
    max_leaves=6,
)
key_filters = st.one_of(
    st.builds(lambda allow: {"allow": allow}, st.lists(key_text, max_size=3)),
    st.builds(lambda deny: {"deny": deny}, st.lists(key_text, max_size=3)),
)


@st.composite
def subscriptions(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(sorted(FIELDS_BY_ACTION)))
    subscription: dict[str, Any] = {"action": action, "name": draw(text), "enabled": draw(st.booleans())}
    if draw(st.booleans()):
        subscription["subscribe"] = draw(fql)
    if action in ("track", "page") and draw(st.booleans()):
        subscription["events"] = draw(key_filters)
    if draw(st.booleans()):
        subscription["keys"] = draw(key_filters)
    if action == "identify":
        subscription["account_traits"] = draw(st.booleans())
    fields = draw(st.lists(st.sampled_from(FIELDS_BY_ACTION[action]), unique=True, max_size=3))
    subscription["mapping"] = {field: draw(mappings) for field in fields}
    return subscription


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """A valid config: every table, each key present or not."""
    pendo: dict[str, Any] = {
        "api_key": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{3,40}", fullmatch=True)),
        "region": draw(st.sampled_from(REGIONS)),
    }
    if draw(st.booleans()):
        pendo["content_host"] = draw(st.sampled_from(["pendo.example.com", "https://cdn.example.org/", "a-b.c-d.io"]))
    options = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "excludeAllText": st.booleans(),
                "disableCookies": st.booleans(),
                "cookieDomain": st.just(".example.com"),
                "allowedText": st.lists(text, max_size=2),
            },
        )
    )
    on_load = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "visitor_id": st.sampled_from(["user_id", "user_id_or_anonymous", "anonymous", "none"]),
                "user_traits": st.booleans(),
                "group": st.booleans(),
                "visitor_keys": key_filters,
                "account_keys": key_filters,
            },
        )
    )
    parts = [table("pendo", pendo)]
    if options:
        parts.append(table("pendo.options", options))
    if on_load:
        parts.append(table("on_load", on_load))
    for subscription in draw(st.lists(subscriptions(), max_size=4)):
        settings = {name: item for name, item in subscription.items() if name != "mapping"}
        parts.append(table("subscriptions", settings, array=True))
        parts.append(table("subscriptions.mapping", subscription["mapping"]))
    parts.append(table("logout", {"clear_session": draw(st.booleans())}))
    parts.append(table("consent", {"categories": draw(st.lists(key_text, max_size=2))}))
    if draw(st.booleans()):
        parts.extend(guide_event_tables(draw))
    parts.append(table("build", {"target": draw(st.sampled_from(TARGETS)), "debug": draw(st.booleans())}))
    return "\n".join(parts)


def guide_event_tables(draw: st.DrawFn) -> list[str]:
    """[guide_events]: on or off, some events renamed or switched off, a property filter."""
    properties = st.lists(st.sampled_from(GUIDE_EVENT_PROPERTIES), max_size=3)
    keys = draw(st.one_of(properties.map(lambda allow: {"allow": allow}), properties.map(lambda deny: {"deny": deny})))
    event_name = st.one_of(st.just(False), text.filter(lambda name: name.strip() != ""))
    # guideSeen keeps a name, so an enabled table always sends something.
    track = draw(st.fixed_dictionaries({}, optional={name: event_name for name in GuideEventNames.model_fields}))
    if track.get("guideSeen") is False:
        del track["guideSeen"]
    tables = [table("guide_events", {"enabled": draw(st.booleans()), "keys": keys})]
    if track:
        tables.append(table("guide_events.track", track))
    return tables
