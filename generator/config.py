"""The config file's schema: every key, its type, its default and what it means.

Names mirror the settings of Segment's Pendo Web (Actions) destination, in snake_case.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from generator.actions import ACTIONS, PRESET_ACTIONS, ActionName
from generator.audiences_config import AudienceSettings
from generator.fql import FqlError, parse_fql, segment_differences, selects_only
from generator.mapping import MappingError, check_mapping
from generator.metadata_config import MetadataSettings
from generator.regions import CDN_HOSTS, Region, agent_url

_API_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?$")
_COOKIE_DOMAIN = re.compile(rf"^\.?{_HOST_LABEL}(?:\.{_HOST_LABEL})+$")
_NONCE = re.compile(r"^[A-Za-z0-9+/_-]{8,}={0,2}$")
_JS_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")

Target = Literal[
    "es2015", "es2016", "es2017", "es2018", "es2019", "es2020", "es2021", "es2022", "es2023", "es2024", "esnext"
]


def checked_fql(value: str) -> str:
    """The subscription unchanged, or a ValueError with the parser's message (column included)."""
    try:
        parse_fql(value)
    except FqlError as error:
        raise ValueError(str(error)) from None
    return value


def _https_host(value: str, *, not_https: str, not_a_host: str) -> str:
    """The lower-cased host of "host" or "https://host", a trailing slash allowed; else a ValueError."""
    host = value
    scheme, separator, rest = value.partition("://")
    if separator:
        if scheme.lower() != "https":
            raise ValueError(f"{value!r} {not_https}")
        host = rest
    host = host.removesuffix("/")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{value!r} {not_a_host}")
    return host.lower()


class StrictModel(BaseModel):
    """A config table: unknown keys and loose types are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GuideOptions(StrictModel):
    """`[pendo.options.guides]`."""

    disabled: bool | None = Field(default=None, description="load no guides")
    delay: bool | None = Field(default=None, description="wait for pendo.startGuides() before showing guides")
    timeout: int | None = Field(default=None, ge=0, description="milliseconds to wait for guides to load")


class AnalyticsOptions(StrictModel):
    """`[pendo.options.analytics]`."""

    excludeEvents: list[str] | None = Field(default=None, description="agent event types not to send, e.g. click")


class AgentOptions(StrictModel):
    """`[pendo.options]`: options passed to pendo.initialize, under the agent's own names."""

    excludeAllText: bool | None = Field(default=None, description="send no element text with clicks")
    allowedText: list[str] | None = Field(default=None, description="texts still sent when excludeAllText is on")
    excludeNonGuideAnalytics: bool | None = Field(default=None, description="send only guide analytics")
    disableCookies: bool | None = Field(default=None, description="keep identity in memory only")
    disablePersistence: bool | None = Field(default=None, description="store nothing in cookies or storage")
    localStorageOnly: bool | None = Field(default=None, description="use localStorage instead of cookies")
    cookieDomain: str | None = Field(default=None, description="domain for Pendo's cookies, e.g. .example.com")
    dataHost: str | None = Field(default=None, description="your CNAME host for Pendo's data")
    contentHost: str | None = Field(default=None, description="your CNAME host for guide content")
    assetHost: str | None = Field(default=None, description="host for the agent's assets")
    forceAnonymous: bool | None = Field(default=None, description="track every visitor as anonymous")
    initializeImmediately: bool | None = Field(default=None, description="start before the page has loaded")
    identityStorageSuffix: str | None = Field(default=None, description="suffix of Pendo's storage keys")
    identityStorageLifetime: int | None = Field(default=None, ge=0, description="identity lifetime in ms")
    additionalApiKeys: list[str] | None = Field(default=None, description="more subscriptions to send to")
    queryStringWhitelist: list[str] | None = Field(default=None, description="query parameters kept in URLs")
    ignoreHashRouting: bool | None = Field(default=None, description="ignore #fragments when tracking pages")
    disableDesigner: bool | None = Field(default=None, description="never launch the Visual Design Studio")
    disableFeedback: bool | None = Field(default=None, description="turn Pendo Feedback off")
    preventCodeInjection: bool | None = Field(default=None, description="load no code from guides")
    observeShadowRoots: bool | None = Field(default=None, description="track elements inside shadow DOM")
    sendEventsWithPostOnly: bool | None = Field(default=None, description="send data with POST, never GET")
    frameIdentitySync: bool | None = Field(default=None, description="share identity with iframes")
    inlineStyleNonce: str | None = Field(default=None, description="CSP nonce for the agent's inline styles")
    guides: GuideOptions | None = Field(default=None, description="the [pendo.options.guides] table")
    analytics: AnalyticsOptions | None = Field(default=None, description="the [pendo.options.analytics] table")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="options this version does not know, passed to the agent as they are"
    )

    @field_validator("dataHost", "contentHost", "assetHost")
    @classmethod
    def _as_https_origin(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The agent uses dataHost and contentHost from pendo.initialize as given: a bare host name
        # would make its requests relative to the page, so the scheme is added here.
        if value is None:
            return None
        return "https://" + _https_host(
            value,
            not_https="must be an https address, e.g. https://pendo-data.example.com",
            not_a_host=f"is not a host; give {info.field_name} as a host with no path, "
            "e.g. pendo-data.example.com or https://pendo-data.example.com",
        )

    @field_validator("cookieDomain")
    @classmethod
    def _check_cookie_domain(cls, value: str | None) -> str | None:
        if value is not None and not _COOKIE_DOMAIN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a cookie domain; give your site's domain, e.g. .example.com "
                "(the agent ignores a domain the page is not on)"
            )
        return value

    @model_validator(mode="after")
    def _extra_does_not_shadow(self) -> AgentOptions:
        clashes = sorted(set(self.extra) & set(type(self).model_fields))
        if clashes:
            raise ValueError(f"extra repeats known option(s) {', '.join(clashes)}; set them directly instead")
        return self

    def for_agent(self) -> dict[str, Any]:
        """The options object handed to pendo.initialize."""
        options = self.model_dump(exclude_none=True, exclude={"extra"})
        return {**options, **self.extra}


class PendoSettings(StrictModel):
    """`[pendo]`: which subscription to send to and where its agent is served from."""

    api_key: str = Field(description="your Pendo subscription's API key (Pendo: Settings > Subscription Settings)")
    region: Region = Field(default="io", description="the Pendo region whose CDN serves the agent")
    content_host: str | None = Field(
        default=None,
        description="your CNAME host for Pendo's agent and content, e.g. pendo-static.example.com",
    )
    options: AgentOptions = Field(default_factory=AgentOptions, description="the [pendo.options] table")
    nonce: str | None = Field(
        default=None,
        description='CSP nonce for the injected agent tag: "from_script" copies this script\'s own nonce',
    )

    @field_validator("nonce")
    @classmethod
    def _check_nonce(cls, value: str | None) -> str | None:
        if value is not None and value != "from_script" and not _NONCE.fullmatch(value):
            raise ValueError(f'{value!r} is not a CSP nonce (base64 characters); or use "from_script"')
        return value

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: str) -> str:
        if not _API_KEY.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Pendo API key; copy it from Pendo (letters, digits, '-' and '_', "
                "e.g. 1a2b3c4d-0000-4000-8000-123456789abc)"
            )
        return value

    @field_validator("content_host")
    @classmethod
    def _normalize_content_host(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _https_host(
            value,
            not_https="must be served over https; give the host alone, e.g. pendo.example.com",
            not_a_host="is not a host name; give the CNAME host only, with no path, e.g. pendo-static.example.com",
        )

    @property
    def agent_host(self) -> str:
        """The host the agent script is loaded from: the CNAME when set, else the region's CDN."""
        return self.content_host or CDN_HOSTS[self.region]

    @property
    def agent_url(self) -> str:
        """The full URL of this subscription's agent script."""
        return agent_url(self.api_key, self.agent_host)


class BuildSettings(StrictModel):
    """`[build]`: how the script is bundled."""

    target: Target = Field(default="es2017", description="the oldest JavaScript version the script must run on")
    debug: bool = Field(
        default=False, description="log every decision to the console (absent from the output when off)"
    )


class KeyFilter(StrictModel):
    """Which keys of an object reach Pendo: `allow` keeps only those listed, `deny` drops those listed."""

    allow: list[str] | None = Field(default=None, description="keep only these keys")
    deny: list[str] = Field(default_factory=list, description="drop these keys, e.g. email")


class NameFilter(StrictModel):
    """Which event names a subscription takes: `allow` takes only those listed, `deny` skips those listed."""

    allow: list[str] | None = Field(default=None, description="take only these event names")
    deny: list[str] = Field(default_factory=list, description="skip these event names")


class Subscription(StrictModel):
    """`[[subscriptions]]`: when an event matches `subscribe`, map it with `mapping` and call Pendo."""

    action: ActionName = Field(description="what to call in Pendo: identify, group, track or page")
    name: str | None = Field(default=None, description="a label shown in debug logs")
    enabled: bool = Field(default=True, description="false keeps the subscription in the file but out of the script")
    subscribe: str | None = Field(default=None, description='which events, in FQL, e.g. type = "track"')
    mapping: dict[str, Any] = Field(default_factory=dict, description="Pendo field = Segment field or directive")
    events: NameFilter | None = Field(default=None, description="event names to take or skip (track and page)")
    keys: KeyFilter = Field(default_factory=KeyFilter, description="which metadata keys reach Pendo")
    account_traits: bool = Field(
        default=False, description="identify only: send the remembered group traits with the account id"
    )
    account_fallback: bool = Field(
        default=True, description="identify only: use the remembered group id when the mapping gives no account id"
    )

    @field_validator("subscribe")
    @classmethod
    def _parse_subscribe(cls, value: str | None) -> str | None:
        return value if value is None else checked_fql(value)

    @field_validator("mapping")
    @classmethod
    def _check_mapping(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        action = info.data.get("action")
        problems: list[str] = []
        for field_name, field_mapping in value.items():
            field = ACTIONS[action].field(field_name) if action else None
            if action and field is None:
                allowed = ", ".join(spec_field.name for spec_field in ACTIONS[action].fields)
                problems.append(f"{field_name}: {action} has no such field; its fields are {allowed}")
                continue
            try:
                check_mapping(field_mapping, field_name)
            except MappingError as error:
                problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _check_against_action(self) -> Subscription:
        if self.events is not None and self.action not in ("track", "page"):
            raise ValueError(f"events filters names of track and page events; remove it from this {self.action}")
        if (self.account_traits or not self.account_fallback) and self.action != "identify":
            raise ValueError("account_traits and account_fallback apply to identify subscriptions only")
        return self

    @property
    def label(self) -> str:
        """The name, else the preset's name for the action."""
        return self.name or ACTIONS[self.action].preset_name

    @property
    def fql(self) -> str:
        """The subscription in FQL, the action's default when none is given."""
        return self.subscribe if self.subscribe is not None else ACTIONS[self.action].default_subscribe

    def field_mapping(self, field_name: str) -> Any:
        """The mapping for one Pendo field: the configured one, else the preset's."""
        if field_name in self.mapping:
            return self.mapping[field_name]
        field = ACTIONS[self.action].field(field_name)
        return field.default if field else None


def default_subscriptions() -> list[Subscription]:
    """Segment's three presets: track, identify and group, each with its default mapping."""
    return [Subscription(action=action) for action in PRESET_ACTIONS]


class OnLoadSettings(StrictModel):
    """`[on_load]`: what pendo.initialize is given when the page loads."""

    visitor_id: Literal["user_id", "user_id_or_anonymous", "anonymous", "none"] = Field(
        default="user_id_or_anonymous",
        description="the visitor id at load: Segment's userId, else _PENDO_T_ + anonymousId, or as chosen",
    )
    user_traits: bool = Field(default=True, description="send the remembered user traits as visitor metadata")
    group: bool = Field(default=True, description="send the remembered group id and traits as the account")
    visitor_keys: KeyFilter = Field(default_factory=KeyFilter, description="which user traits reach Pendo at load")
    account_keys: KeyFilter = Field(default_factory=KeyFilter, description="which group traits reach Pendo at load")


class LogoutSettings(StrictModel):
    """`[logout]`: what analytics.reset() does to Pendo."""

    clear_session: bool = Field(default=True, description="call pendo.clearSession() on analytics.reset()")


class ConsentSettings(StrictModel):
    """`[consent]`: Segment consent categories that must all be granted before Pendo loads or hears anything."""

    categories: list[str] = Field(default_factory=list, description='e.g. ["analytics"]; empty means no gate')
    forward_preference_events: bool = Field(
        default=False,
        description='also send the consent wrapper\'s "Segment Consent Preference Updated" track events to Pendo',
    )


class SourceSettings(StrictModel):
    """`[source]`: which analytics client on the page to listen to."""

    client: Literal["segment", "rudderstack"] = Field(
        default="segment", description="segment (analytics.js 2.0) or rudderstack (rudderanalytics v3)"
    )
    global_key: str | None = Field(
        default=None, description="the client's global; analytics / rudderanalytics unless the snippet changed it"
    )

    @field_validator("global_key")
    @classmethod
    def _check_global_key(cls, value: str | None) -> str | None:
        if value is not None and not _JS_IDENTIFIER.fullmatch(value):
            raise ValueError(f"{value!r} is not a JavaScript global name (letters, digits, _ and $)")
        return value

    @property
    def resolved_global_key(self) -> str:
        """The global to look for."""
        return self.global_key or ("analytics" if self.client == "segment" else "rudderanalytics")


class WebhookSettings(StrictModel):
    """`[webhook]`: the Segment Webhooks (Actions) destination that sends server-side track events to Pendo."""

    name: str = Field(default="Send track events to Pendo", description="the subscription's name in Segment")
    subscribe: str = Field(default='type = "track"', description="which events, in FQL")
    secret_env: str = Field(
        default="PENDO_TRACK_EVENT_SECRET", description="environment variable holding Pendo's Track Event Shared Secret"
    )
    # Off by default: the checklist connects the destination to mobile and server sources, so an empty
    # [webhook] table must not make every build warn of double tracking.
    covers_web_source: bool = Field(
        default=False,
        description="the destination is connected to this web source too (so browser track forwarding must be off)",
    )

    @field_validator("subscribe")
    @classmethod
    def _parse_subscribe(cls, value: str) -> str:
        checked_fql(value)
        if not selects_only(parse_fql(value), "type", "track"):
            raise ValueError(
                "must select track events only (Pendo's Track Events API takes nothing else): start it with "
                'type = "track" and ..., e.g. type = "track" and event != "Heartbeat"'
            )
        # Segment evaluates this subscription, not this tool: what its engine reads differently is refused.
        differences = segment_differences(value)
        if differences:
            raise ValueError(
                f"Segment, not this tool, evaluates this subscription, and it uses {'; '.join(differences)}: "
                'rewrite that part, e.g. event != "X" instead of not event = "X"'
            )
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value


# Pendo guide events → Segment --------------------------------------------------------------------

# The properties a forwarded guide event can carry, each read from Pendo's event (see guide-events.js.jinja).
GUIDE_EVENT_PROPERTIES = (
    "guide_id",
    "guide_name",
    "step_id",
    "reason",
    "destination_step_id",
    "snooze_duration",
    "button_id",
    "button_type",
    "button_actions",
    "poll_id",
    "poll_type",
    "poll_answer",
)
_MAX_EVENT_NAME = 200


class GuideEventNames(StrictModel):
    """`[guide_events.track]`: the Segment track event each Pendo guide event becomes; false sends none."""

    guideSeen: str | bool = Field(default="Pendo Guide Seen", description="a guide step was shown")
    guideAdvanced: str | bool = Field(default="Pendo Guide Advanced", description="the visitor went to the next step")
    guideDismissed: str | bool = Field(default="Pendo Guide Dismissed", description="the visitor closed the guide")
    guideSnoozed: str | bool = Field(default="Pendo Guide Snoozed", description="the visitor snoozed the guide")
    guideActivity: str | bool = Field(
        default="Pendo Guide Button Clicked", description="the visitor clicked a button or link in a guide"
    )
    pollResponse: str | bool = Field(default="Pendo Poll Answered", description="the visitor answered a poll")

    @field_validator("*", mode="before")
    @classmethod
    def _name_or_false(cls, value: Any, info: ValidationInfo) -> Any:
        if value is False:
            return value
        if isinstance(value, str) and value.strip() and len(value) <= _MAX_EVENT_NAME:
            return value
        raise ValueError(
            f"{value!r} is not a track event name; give a name of 1 to {_MAX_EVENT_NAME} characters, "
            f'e.g. "Pendo Guide Seen", or false to send no event for {info.field_name}'
        )

    def forwarded(self) -> dict[str, str]:
        """Pendo event type → Segment event name, for the events that are sent."""
        return {pendo_type: name for pendo_type, name in self.model_dump().items() if isinstance(name, str)}


class GuideEventSettings(StrictModel):
    """`[guide_events]`: Pendo guide and poll events sent to Segment as track events (off by default)."""

    enabled: bool = Field(default=False, description="send Pendo guide and poll events to Segment with analytics.track")
    track: GuideEventNames = Field(
        default_factory=GuideEventNames, description="the [guide_events.track] table: Pendo event = track event name"
    )
    keys: KeyFilter = Field(default_factory=KeyFilter, description="which properties reach Segment")

    @field_validator("keys")
    @classmethod
    def _known_properties(cls, value: KeyFilter) -> KeyFilter:
        for name in [*(value.allow or []), *value.deny]:
            if name not in GUIDE_EVENT_PROPERTIES:
                close = difflib.get_close_matches(name, GUIDE_EVENT_PROPERTIES, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"{name!r} is not a guide event property; {hint}they are {', '.join(GUIDE_EVENT_PROPERTIES)}"
                )
        return value

    @model_validator(mode="after")
    def _sends_something(self) -> GuideEventSettings:
        if self.enabled and not self.track.forwarded():
            raise ValueError("every event in [guide_events.track] is false; name one, or set enabled = false")
        return self


class Config(StrictModel):
    """The whole config file."""

    pendo: PendoSettings = Field(description="the [pendo] table")
    source: SourceSettings = Field(default_factory=SourceSettings, description="the [source] table")
    on_load: OnLoadSettings = Field(default_factory=OnLoadSettings, description="the [on_load] table")
    subscriptions: list[Subscription] = Field(
        default_factory=default_subscriptions, description="[[subscriptions]]; Segment's three presets by default"
    )
    logout: LogoutSettings = Field(default_factory=LogoutSettings, description="the [logout] table")
    consent: ConsentSettings = Field(default_factory=ConsentSettings, description="the [consent] table")
    build: BuildSettings = Field(default_factory=BuildSettings, description="the [build] table")
    webhook: WebhookSettings | None = Field(default=None, description="the [webhook] table, for server-side events")
    metadata: MetadataSettings | None = Field(
        default=None, description="the [metadata] table: server-side identify and group to Pendo's metadata API"
    )
    guide_events: GuideEventSettings = Field(
        default_factory=GuideEventSettings, description="the [guide_events] table: Pendo guide events to Segment"
    )
    audiences: AudienceSettings | None = Field(
        default=None, description="the [audiences] table: Engage audience membership to Pendo Segments (relay)"
    )

    @model_validator(mode="after")
    def _consent_needs_segment(self) -> Config:
        # Only Segment's consent tools stamp consent on events; RudderStack's events never carry it,
        # so a gate would hold Pendo back forever.
        if self.consent.categories and self.source.client != "segment":
            raise ValueError(
                "consent.categories reads Segment's consent stamps, which RudderStack events do not carry; "
                "remove [consent] or use RudderStack's own consent management to load this script"
            )
        return self

    @model_validator(mode="after")
    def _guide_events_need_segment(self) -> Config:
        # The events go out through analytics.js, whose integrations option is what keeps them from Pendo.
        if self.guide_events.enabled and self.source.client != "segment":
            raise ValueError(
                "guide_events.enabled sends through Segment's analytics.track, and RudderStack's SDK is wrapped, "
                'not hooked, so the events would come back to Pendo; use client = "segment" or remove [guide_events]'
            )
        return self
