"""The tests' local Pendo guide host: answers the agent's guide.json with guides from generator.demo.guides."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import BrowserContext, Route

from generator.demo.guides import HOLD_SECONDS, guide_list_answer


@dataclass
class GuideHost:
    """Answers the agent's guide.json requests with the given guides (registered after FakeInternet, so it wins)."""

    context: BrowserContext
    guides: list[dict[str, Any]]
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.route("**/data/guide.json/**", self._answer)

    def _answer(self, route: Route) -> None:
        self.requests.append(route.request.url)
        request_id = parse_qs(urlsplit(route.request.url).query).get("id", ["0"])[0]
        time.sleep(HOLD_SECONDS)
        body = guide_list_answer(request_id, self.guides)
        route.fulfill(body=json.dumps(body), content_type="application/json")
