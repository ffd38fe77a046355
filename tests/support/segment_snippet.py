"""A Segment-compatible snippet for test pages: the stub queue analytics.js replays when it loads.

Written for these tests to the snippet's public contract (an array of [method, ...args] calls, a
`load` that injects analytics.min.js from Segment's CDN, and an optional custom global key).
"""

from __future__ import annotations

import json

STUB_METHODS = [
    "trackSubmit",
    "trackClick",
    "trackLink",
    "trackForm",
    "pageview",
    "identify",
    "reset",
    "group",
    "track",
    "ready",
    "alias",
    "debug",
    "page",
    "screen",
    "once",
    "off",
    "on",
    "addSourceMiddleware",
    "addIntegrationMiddleware",
    "setAnonymousId",
    "addDestinationMiddleware",
    "register",
]


def segment_snippet(write_key: str, *, global_key: str = "analytics", page_call: bool = True) -> str:
    """JavaScript that installs the stub, starts loading analytics.js and (optionally) queues page()."""
    page_line = "stub.page();" if page_call else ""
    return f"""
(function () {{
  var key = {json.dumps(global_key)};
  var stub = window[key] = window[key] || [];
  if (stub.initialize || stub.invoked) {{ return; }}
  stub.invoked = true;
  stub.methods = {json.dumps(STUB_METHODS)};
  stub.methods.forEach(function (method) {{
    stub[method] = function () {{
      var call = Array.prototype.slice.call(arguments);
      call.unshift(method);
      stub.push(call);
      return stub;
    }};
  }});
  stub.load = function (writeKey, options) {{
    var tag = document.createElement('script');
    tag.async = true;
    tag.src = 'https://cdn.segment.com/analytics.js/v1/' + writeKey + '/analytics.min.js';
    if (key !== 'analytics') {{ tag.setAttribute('data-global-segment-analytics-key', key); }}
    var first = document.getElementsByTagName('script')[0];
    first.parentNode.insertBefore(tag, first);
    stub._loadOptions = options;
  }};
  stub._writeKey = {json.dumps(write_key)};
  stub.SNIPPET_VERSION = '5.2.1';
  stub.load({json.dumps(write_key)});
  {page_line}
}})();
"""
