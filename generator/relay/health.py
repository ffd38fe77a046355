"""What /healthz reports: every background task and destination names its problem here, or clears it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("generator.relay")
# A task that fails again and again is restarted at most this often.
RESTART_SECONDS = (0.5, 30.0)
# A task that ran this long before failing starts again from the shortest delay.
HEALTHY_RUN_SECONDS = 60.0


class Health:
    """Current problems by the part that has them (a task, storage, a destination)."""

    def __init__(self) -> None:
        """No problems yet."""
        self._problems: dict[str, tuple[str, float]] = {}

    def report(self, part: str, problem: str | None) -> None:
        """Set part's problem, or clear it with None."""
        if problem is None:
            self._problems.pop(part, None)
        elif part not in self._problems or self._problems[part][0] != problem:
            since = self._problems.get(part, (problem, time.time()))[1]
            self._problems[part] = (problem, since)

    def problem(self, part: str) -> str:
        """Part's problem, or an empty string."""
        return self._problems.get(part, ("", 0.0))[0]

    def problems(self) -> dict[str, str]:
        """Each part's problem, with when it started."""
        return {
            part: f"{problem} (since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))})"
            for part, (problem, since) in sorted(self._problems.items())
        }

    @property
    def ok(self) -> bool:
        """Whether nothing has a problem."""
        return not self._problems


def restart_delay(failures: int) -> float:
    """Bounded exponential delay before restarting a task that failed failures times in a row."""
    first, cap = RESTART_SECONDS
    return float(min(cap, first * 2 ** min(max(failures - 1, 0), 16)) * random.uniform(0.8, 1.0))


async def supervise(name: str, task: Callable[[], Awaitable[None]], health: Health, stop: asyncio.Event) -> None:
    """Run task until stop is set; when it fails, log it, show it in health, and start it again after a delay.

    The task clears its own problem (health.report(name, None)) once it works again.
    """
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await task()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s failed", name)
            reason = f"{type(error).__name__}: {error}"
        else:
            if stop.is_set():
                return
            reason = "it stopped on its own"
        failures = 0 if time.monotonic() - started > HEALTHY_RUN_SECONDS else failures + 1
        delay = restart_delay(failures)
        health.report(name, f"{name} failed ({reason[:300]}); restarted in {delay:.1f}s, failure {failures}")
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
