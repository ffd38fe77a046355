// Sends events with Segment's own Node library (@segment/analytics-node) to a Segment-compatible
// endpoint, as a server would, and reports the HTTP statuses the library saw.
// stdin: {"host": "http://127.0.0.1:PORT", "writeKey": "...", "calls": [["track", {...}], ...]}
'use strict';
const { Analytics } = require('@segment/analytics-node');

let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => (text += chunk));
process.stdin.on('end', async () => {
  const input = JSON.parse(text);
  const analytics = new Analytics({ writeKey: input.writeKey, host: input.host, flushAt: 5, maxRetries: 2 });
  const statuses = [];
  const errors = [];
  analytics.on('http_response', (response) => statuses.push(response.status));
  analytics.on('error', (error) => errors.push(String((error && error.reason) || error)));
  for (const [method, message] of input.calls) {
    analytics[method](message);
  }
  await analytics.closeAndFlush({ timeout: 20000 });
  process.stdout.write(JSON.stringify({ statuses, errors }));
});
