"""/metrics in Prometheus' text exposition format (version 0.0.4), beside the JSON one."""

from __future__ import annotations

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
