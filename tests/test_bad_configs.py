"""Bad configs: each exits 1 naming the field and the fix, never a traceback, and writes nothing.

An earlier good build in the output directory must survive every one of them untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.cli import main
from generator.config import GuideEventNames
from generator.config_loader import parse_config
from generator.errors import ConfigError

KEY = 'api_key = "5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a"'
GOOD = f"[pendo]\n{KEY}\n"
DEEP_MAPPING = "{ a = " * 10 + "1" + " }" * 10
GUIDE_EVENT_NAMES = list(GuideEventNames.model_fields)
WIDE_MAPPING = "{ " + ", ".join(f"k{index} = [1, 2, 3]" for index in range(120)) + " }"

# (case id, config file content, text the error must contain: the field and what to do)
BAD_CONFIGS: list[tuple[str, str | bytes, str]] = [
    ("empty file", "", "pendo: is required but missing; add a [pendo] table with api_key"),
    ("no api_key", "[pendo]\nregion = 'eu'\n", "pendo.api_key: is required but missing; add api_key = ..."),
    ("empty api_key", '[pendo]\napi_key = ""\n', "pendo.api_key: '' is not a Pendo API key; copy it from Pendo"),
    ("api_key number", "[pendo]\napi_key = 42\n", "pendo.api_key: expected a string, got an integer 42"),
    ("api_key with spaces", '[pendo]\napi_key = "my key"\n', "pendo.api_key: 'my key' is not a Pendo API key"),
    ("api_key injection", '[pendo]\napi_key = "</script><script>alert(1)</script>"\n', "is not a Pendo API key"),
    ("unknown table", GOOD + "[segmnet]\n", "segmnet: unknown key; allowed keys here: pendo, source"),
    ("typo in pendo", GOOD + 'regoin = "eu"\n', "pendo.regoin: unknown key; did you mean 'region'?"),
    ("bad region", GOOD + 'region = "us"\n', "pendo.region: 'us' is not one of io, eu, us1, jp, au, gov"),
    ("region as number", GOOD + "region = 1\n", "pendo.region: 1 is not one of io, eu"),
    (
        "content_host javascript",
        GOOD + 'content_host = "javascript:alert(1)"\n',
        "pendo.content_host: 'javascript:alert(1)' is not a host name; give the CNAME host only",
    ),
    (
        "content_host with path",
        GOOD + 'content_host = "https://x/ path"\n',
        "pendo.content_host: 'https://x/ path' is not a host name",
    ),
    ("content_host http", GOOD + 'content_host = "http://pendo.example.com"\n', "must be served over https"),
    ("content_host query", GOOD + 'content_host = "pendo.example.com?x=1"\n', "is not a host name"),
    ("bad nonce", GOOD + 'nonce = "not a nonce!"\n', "pendo.nonce: 'not a nonce!' is not a CSP nonce"),
    (
        "options typo",
        GOOD + "[pendo.options]\nexcludAllText = true\n",
        "pendo.options.excludAllText: unknown key; did you mean 'excludeAllText'?",
    ),
    (
        "option wrong type",
        GOOD + '[pendo.options]\nexcludeAllText = "yes"\n',
        "pendo.options.excludeAllText: expected true or false, got a string 'yes'",
    ),
    (
        "dataHost http",
        GOOD + '[pendo.options]\ndataHost = "http://data.example.com"\n',
        "pendo.options.dataHost: 'http://data.example.com' must be an https address",
    ),
    (
        "contentHost with path",
        GOOD + '[pendo.options]\ncontentHost = "https://cdn.example.com/pendo"\n',
        "pendo.options.contentHost: 'https://cdn.example.com/pendo' is not a host; give contentHost as a host",
    ),
    (
        "cookieDomain url",
        GOOD + '[pendo.options]\ncookieDomain = "https://example.com"\n',
        "pendo.options.cookieDomain: 'https://example.com' is not a cookie domain; give your site's domain",
    ),
    (
        "webhook not only track",
        GOOD + "[webhook]\nsubscribe = 'event = \"Signed Up\"'\n",
        "webhook.subscribe: must select track events only (Pendo's Track Events API takes nothing else)",
    ),
    (
        "webhook FQL Segment misreads",
        GOOD + '[webhook]\nsubscribe = \'type = "track" and not event = "Test"\'\n',
        "webhook.subscribe: Segment, not this tool, evaluates this subscription, and it uses 'not'",
    ),
    (
        "negative guide timeout",
        GOOD + "[pendo.options.guides]\ntimeout = -5\n",
        "pendo.options.guides.timeout: must be at least 0, got -5",
    ),
    (
        "extra shadows option",
        GOOD + "[pendo.options.extra]\nexcludeAllText = true\n",
        "extra repeats known option(s) excludeAllText",
    ),
    (
        "bad client",
        GOOD + '[source]\nclient = "mixpanel"\n',
        "source.client: 'mixpanel' is not one of segment, rudderstack",
    ),
    (
        "bad global key",
        GOOD + '[source]\nglobal_key = "window.analytics"\n',
        "source.global_key: 'window.analytics' is not a JavaScript global name",
    ),
    (
        "bad visitor_id",
        GOOD + '[on_load]\nvisitor_id = "email"\n',
        "on_load.visitor_id: 'email' is not one of user_id, user_id_or_anonymous, anonymous, none",
    ),
    ("user_traits string", GOOD + '[on_load]\nuser_traits = "no"\n', "on_load.user_traits: expected true or false"),
    (
        "key filter not a list",
        GOOD + '[on_load]\nvisitor_keys = { deny = "email" }\n',
        "on_load.visitor_keys.deny: expected an array",
    ),
    ("subscriptions as table", GOOD + "[subscriptions]\naction = 'track'\n", "subscriptions: expected an array"),
    (
        "subscription without action",
        GOOD + "[[subscriptions]]\nname = 'x'\n",
        "subscriptions.0.action: is required but missing",
    ),
    (
        "unknown action",
        GOOD + "[[subscriptions]]\naction = 'alias'\n",
        "subscriptions.0.action: 'alias' is not one of identify, group, track, page",
    ),
    (
        "invalid FQL",
        GOOD + "[[subscriptions]]\naction = 'track'\nsubscribe = 'type = '\n",
        'subscriptions.0.subscribe: expected a value ("text", number, true, false, null), found the end at column 8',
    ),
    (
        "ambiguous FQL",
        GOOD + '[[subscriptions]]\naction = \'track\'\nsubscribe = \'type = "a" and event = "b" or event = "c"\'\n',
        "'and' and 'or' mixed without parentheses; add them",
    ),
    (
        "unknown FQL field",
        GOOD + "[[subscriptions]]\naction = 'track'\nsubscribe = 'anonymousId = \"x\"'\n",
        "unknown field 'anonymousId'",
    ),
    (
        "unknown directive",
        GOOD + "[[subscriptions]]\naction = 'track'\nmapping = { event = { '@case' = { operator = 'lower' } } }\n",
        "subscriptions.0.mapping: event: unknown mapping directive '@case'; supported: @path, @if, @template, @literal",
    ),
    (
        "unknown mapping field",
        GOOD + "[[subscriptions]]\naction = 'track'\nmapping = { name = 'x' }\n",
        "subscriptions.0.mapping: name: track has no such field; its fields are event, metadata",
    ),
    (
        "bad path",
        GOOD + "[[subscriptions]]\naction = 'track'\nmapping = { event = { '@path' = 'event name' } }\n",
        "is not a supported path",
    ),
    (
        "absurdly deep mapping",
        GOOD + f"[[subscriptions]]\naction = 'track'\nmapping = {{ metadata = {DEEP_MAPPING} }}\n",
        "nested more than 8 levels deep; flatten it",
    ),
    (
        "absurdly large mapping",
        GOOD + f"[[subscriptions]]\naction = 'track'\nmapping = {{ metadata = {WIDE_MAPPING} }}\n",
        "mapping is too large (more than 400 values)",
    ),
    (
        "events on identify",
        GOOD + "[[subscriptions]]\naction = 'identify'\nevents = { deny = ['x'] }\n",
        "subscriptions.0: events filters names of track and page events",
    ),
    (
        "account_traits on track",
        GOOD + "[[subscriptions]]\naction = 'track'\naccount_traits = true\n",
        "account_traits and account_fallback apply to identify subscriptions only",
    ),
    ("consent not a list", GOOD + '[consent]\ncategories = "analytics"\n', "consent.categories: expected an array"),
    (
        "consent with rudderstack",
        GOOD + '[source]\nclient = "rudderstack"\n[consent]\ncategories = ["analytics"]\n',
        "consent.categories reads Segment's consent stamps, which RudderStack events do not carry",
    ),
    (
        "guide_events enabled string",
        GOOD + '[guide_events]\nenabled = "yes"\n',
        "guide_events.enabled: expected true or false, got a string 'yes'",
    ),
    (
        "guide_events unknown event",
        GOOD + '[guide_events]\nenabled = true\n[guide_events.track]\nguideSeem = "Seen"\n',
        "guide_events.track.guideSeem: unknown key; did you mean 'guideSeen'?",
    ),
    (
        "guide_events empty name",
        GOOD + '[guide_events]\nenabled = true\n[guide_events.track]\npollResponse = " "\n',
        "guide_events.track.pollResponse: ' ' is not a track event name; give a name of 1 to 200 characters",
    ),
    (
        "guide_events name true",
        GOOD + "[guide_events]\nenabled = true\n[guide_events.track]\nguideSeen = true\n",
        "guide_events.track.guideSeen: True is not a track event name; give a name of 1 to 200 characters, "
        'e.g. "Pendo Guide Seen", or false to send no event for guideSeen',
    ),
    (
        "guide_events unknown property",
        GOOD + '[guide_events]\nenabled = true\nkeys = { deny = ["answer"] }\n',
        "guide_events.keys: 'answer' is not a guide event property; did you mean 'poll_answer'? they are guide_id",
    ),
    (
        "guide_events all off",
        GOOD
        + "[guide_events]\nenabled = true\n[guide_events.track]\n"
        + "".join(f"{name} = false\n" for name in GUIDE_EVENT_NAMES),
        "guide_events: every event in [guide_events.track] is false; name one, or set enabled = false",
    ),
    (
        "guide_events with rudderstack",
        GOOD + '[source]\nclient = "rudderstack"\n[guide_events]\nenabled = true\n',
        "guide_events.enabled sends through Segment's analytics.track",
    ),
    ("bad target", GOOD + '[build]\ntarget = "es5"\n', "build.target: 'es5' is not one of es2015"),
    ("debug as string", GOOD + '[build]\ndebug = "on"\n', "build.debug: expected true or false, got a string 'on'"),
    (
        "metadata maps nothing",
        GOOD + "[metadata]\n",
        "metadata: maps no field; add one, e.g. [metadata.visitor.agent] email = ",
    ),
    (
        "metadata bad field name",
        GOOD + "[metadata.visitor.custom]\n'plan-tier' = { '@path' = '$.traits.plan' }\n",
        "metadata.visitor.custom: 'plan-tier' is not a Pendo field name (letters, digits and _",
    ),
    (
        "metadata unknown directive",
        GOOD + "[metadata.account.agent]\nname = { '@case' = { operator = 'lower' } }\n",
        "metadata.account.agent: name: unknown mapping directive '@case'",
    ),
    (
        "metadata field in both groups",
        GOOD + "[metadata.visitor]\nagent = { plan = 1 }\ncustom = { plan = 2 }\n",
        "metadata.visitor: plan is both an agent and a custom field; keep it in one group",
    ),
    (
        "metadata group typo",
        GOOD + "[metadata.visitor.costum]\nplan = 1\n",
        "metadata.visitor.costum: unknown key; did you mean 'custom'? allowed keys here: agent, custom",
    ),
    (
        "metadata secret_env",
        GOOD + "[metadata]\nsecret_env = '$PENDO_KEY'\n[metadata.visitor.agent]\nemail = 'x'\n",
        "metadata.secret_env: '$PENDO_KEY' is not an environment variable name",
    ),
    (
        "metadata window too long",
        GOOD + "[metadata]\nwindow_seconds = 86400\n[metadata.visitor.agent]\nemail = 'x'\n",
        "metadata.window_seconds: must be at most 3600.0, got 86400.0",
    ),
    (
        "metadata body too small",
        GOOD + "[metadata]\nmax_bytes = 100\n[metadata.visitor.agent]\nemail = 'x'\n",
        "metadata.max_bytes: must be at least 16384, got 100",
    ),
    (
        "metadata parent id path",
        GOOD + "[metadata.parent_account]\nid = { '@path' = 'traits parent' }\nagent = { name = 'x' }\n",
        "metadata.parent_account.id: '$.traits parent' is not a supported path at column 9",
    ),
    ("TOML syntax error", "[pendo\napi_key = 1\n", "TOML syntax error: "),
    ("not UTF-8", b'[pendo]\napi_key = "\xff\xfe"\n', "is not UTF-8 (bad byte at offset 19); save the file as UTF-8"),
    ("binary garbage", b"\x00\x01\x02\x03", "TOML syntax error"),
]


@pytest.fixture
def good_build(tmp_path: Path) -> Path:
    config = tmp_path / "good.toml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    assert main(["build", "--config", str(config), "--out", str(out)]) == 0
    return out


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.mark.parametrize(
    ("content", "expected"), [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS]
)
def test_bad_config_exits_1_names_the_problem_and_leaves_the_output_alone(
    tmp_path: Path, good_build: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    before = snapshot(good_build)
    capsys.readouterr()

    assert main(["build", "--config", str(config), "--out", str(good_build)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {config}: ")
    assert expected in error
    assert "Traceback" not in error
    assert snapshot(good_build) == before


def test_a_directory_or_a_missing_file_instead_of_a_config(
    tmp_path: Path, good_build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(good_build)
    assert main(["build", "--config", str(tmp_path), "--out", str(good_build)]) == 1
    assert "is a directory; pass the path of a .toml config file" in capsys.readouterr().err
    assert main(["build", "--config", str(tmp_path / "nope.toml"), "--out", str(good_build)]) == 1
    assert "file not found; check the path passed to --config" in capsys.readouterr().err
    assert snapshot(good_build) == before


def test_a_cyclic_mapping_from_the_library_api_is_a_config_error() -> None:
    cyclic: dict[str, object] = {}
    cyclic["again"] = cyclic
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"pendo": {"api_key": "k-1"}, "subscriptions": [{"action": "track", "mapping": {"metadata": cyclic}}]}
        )
    assert "subscriptions.0.mapping" in str(caught.value)


def test_the_matrix_is_at_least_thirty_configs() -> None:
    assert len(BAD_CONFIGS) + 2 >= 30
