"""/metrics in Prometheus' text exposition format (version 0.0.4), beside the JSON one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from generator.relay.audience_store import AudienceRow

BRAKE_STATES = ("closed", "open", "probing")

EVENT_COUNTERS = ("received", "duplicates", "delivered", "retried", "dead_lettered")


def prometheus_text(
    stats: dict[str, int], problems: dict[str, str], windows: dict[str, float], paused: dict[str, float]
) -> str:
    """The relay's counters and state as Prometheus metrics."""
    lines = [
        "# HELP relay_events_total Events by what happened to them.",
        "# TYPE relay_events_total counter",
        *(f'relay_events_total{{outcome="{name}"}} {stats.get(name, 0)}' for name in EVENT_COUNTERS),
        "# HELP relay_pending_events Events waiting for delivery.",
        "# TYPE relay_pending_events gauge",
        f"relay_pending_events {stats.get('pending', 0)}",
        "# HELP relay_healthy 1 when /healthz says ok.",
        "# TYPE relay_healthy gauge",
        f"relay_healthy {0 if problems else 1}",
        "# HELP relay_problem A part of the relay with a problem (the reason is in /healthz).",
        "# TYPE relay_problem gauge",
        *(f'relay_problem{{part="{_label(part)}"}} 1' for part in problems),
        "# HELP relay_concurrency_window Requests a destination may have in flight now (adaptive).",
        "# TYPE relay_concurrency_window gauge",
        *(f'relay_concurrency_window{{destination="{_label(name)}"}} {value:g}' for name, value in windows.items()),
        "# HELP relay_paused_seconds Seconds left of a destination's pause after a 429 or 503.",
        "# TYPE relay_paused_seconds gauge",
        *(f'relay_paused_seconds{{destination="{_label(name)}"}} {paused.get(name, 0.0):g}' for name in windows),
    ]
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def destinations_text(destinations: dict[str, dict[str, Any]]) -> str:
    """Each destination's brake, next probe, rate limit and requests, as Prometheus metrics."""
    lines = [
        "# HELP relay_destination_brake_state 1 for the brake state a destination is in (closed: sending).",
        "# TYPE relay_destination_brake_state gauge",
    ]
    for name, state in destinations.items():
        lines += [
            f'relay_destination_brake_state{{destination="{_label(name)}",state="{brake}"}} '
            f"{1 if state['brake'] == brake else 0}"
            for brake in BRAKE_STATES
        ]
    gauges = [
        ("consecutive_failures", "relay_destination_consecutive_failures", "Failed requests in a row.", "gauge"),
        ("next_probe_seconds", "relay_destination_next_probe_seconds", "Seconds to the brake's next probe.", "gauge"),
        ("max_rate", "relay_destination_max_rate", "Requests per second allowed (--max-rate).", "gauge"),
        ("in_flight", "relay_destination_in_flight", "Requests under way.", "gauge"),
        ("requests", "relay_destination_requests_total", "Requests sent.", "counter"),
        ("failed_requests", "relay_destination_failed_requests_total", "Requests that failed.", "counter"),
    ]
    for key, metric, text, kind in gauges:
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        lines += [
            f'{metric}{{destination="{_label(name)}"}} {float(state[key] or 0):g}'
            for name, state in destinations.items()
        ]
    return "\n".join(lines) + "\n"


def limits_text(counts: dict[str, int]) -> str:
    """Track events Pendo will not show in full, by why, as a Prometheus counter."""
    lines = [
        "# HELP relay_pendo_limit_events_total Track events sent that Pendo will not show in full, by why.",
        "# TYPE relay_pendo_limit_events_total counter",
        *(f'relay_pendo_limit_events_total{{kind="{_label(kind)}"}} {count}' for kind, count in counts.items()),
    ]
    return "\n".join(lines) + "\n"


def audience_counts(rows: Sequence[AudienceRow], known: Callable[[str], str | None]) -> dict[str, dict[str, Any]]:
    """Per audience: its Pendo segment and the memberships added, removed, failed and pending (all relays)."""
    return {
        row.audience: {
            "segment": row.segment_id or known(row.audience),
            "added": row.added,
            "removed": row.removed,
            "failed": row.failed,
            "pending": row.pending,
        }
        for row in rows
    }


def audience_prometheus(counts: dict[str, dict[str, Any]]) -> str:
    """The audience counts as Prometheus metrics (empty without [audiences])."""
    if not counts:
        return ""
    lines = [
        "# HELP relay_audience_memberships_total Audience memberships written to Pendo segments, by outcome.",
        "# TYPE relay_audience_memberships_total counter",
    ]
    for audience, row in counts.items():
        labels = f'audience="{_label(audience)}",segment="{_label(str(row.get("segment") or ""))}"'
        lines += [
            f'relay_audience_memberships_total{{{labels},outcome="{name}"}} {row.get(name, 0)}'
            for name in ("added", "removed", "failed")
        ]
    lines += [
        "# HELP relay_audience_pending Audience memberships waiting to be written.",
        "# TYPE relay_audience_pending gauge",
        *(
            f'relay_audience_pending{{audience="{_label(audience)}"}} {row.get("pending", 0)}'
            for audience, row in counts.items()
        ),
    ]
    return "\n".join(lines) + "\n"


def operations_text(clients: dict[str, int], not_forwarded: dict[str, int], *, ready: bool) -> str:
    """What senders got wrong, the calls answered but not forwarded, and readiness, as Prometheus metrics."""
    lines = [
        "# HELP relay_client_errors_total Requests senders got wrong (dropped mid-body, malformed, too slow).",
        "# TYPE relay_client_errors_total counter",
        *(f'relay_client_errors_total{{kind="{_label(kind)}"}} {count}' for kind, count in clients.items()),
        "# HELP relay_not_forwarded_total Calls answered but not forwarded (Pendo has no API for them).",
        "# TYPE relay_not_forwarded_total counter",
        *(f'relay_not_forwarded_total{{type="{_label(kind)}"}} {count}' for kind, count in not_forwarded.items()),
        "# HELP relay_ready 1 when /readyz says intake can store events.",
        "# TYPE relay_ready gauge",
        f"relay_ready {1 if ready else 0}",
    ]
    return "\n".join(lines) + "\n"
