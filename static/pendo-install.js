// The agent replays calls made on these stub methods once it has loaded. The list matches
// METHODS_TO_CAPTURE in @pendo/agent; the usual snippets omit clearSession, which then throws.
const QUEUED_METHODS = 'initialize identify updateOptions pageLoad track clearSession'.split(' ');

// While the agent is blocked or slow, calls wait in pendo._q; this bound keeps a blocked
// agent from growing that queue for as long as the page stays open.
const MAX_QUEUED_CALLS = 500;

export function installPendoStub(win) {
  const pendo = (win.pendo = win.pendo || {});
  for (const method of QUEUED_METHODS) {
    // This runs before every Pendo call, so it writes only what is missing.
    pendo[method] ||
      (pendo[method] = (...args) => {
        const queue = (pendo._q = pendo._q || []);
        // initialize must run before anything else it queued behind, as in Pendo's own snippet.
        queue[method === 'initialize' ? 'unshift' : 'push']([method, ...args]);
        // Over the bound, the oldest call goes (after initialize, which is kept): shift() takes
        // constant time where splice() moves the whole queue, on every call while the agent is away.
        if (queue.length > MAX_QUEUED_CALLS) {
          if (queue[0][0] === 'initialize') {
            queue[1] = queue[0];
          }
          queue.shift();
        }
      });
  }
  return pendo;
}

// Adds the agent's script tag, unless the page has an agent (or its tag:
// https://<host>/agent/static/<api key>/pendo.js) already. The agent starts only once the page has
// loaded anyway, so the tag is added after the load event, which a slow or hanging Pendo CDN then
// cannot hold up; immediately (initializeImmediately) adds it at once.
export function requestAgent(win, doc, url, nonce, immediately) {
  const pendo = win.pendo;
  if (
    !(pendo && (pendo.VERSION || pendo.getVisitorId)) &&
    !doc.querySelector('script[src*="/agent/static/"][src*="/pendo.js"]')
  ) {
    const inject = () => {
      // A script added this way is async already.
      const script = doc.createElement('script');
      if (nonce) {
        script.nonce = nonce;
      }
      script.src = url;
      (doc.head || doc.documentElement).appendChild(script);
    };
    if (immediately || doc.readyState === 'complete') {
      inject();
    } else {
      win.addEventListener('load', inject);
    }
  }
}

// Whether the page initialized Pendo itself: the agent is ready, or an initialize waits in its queue.
export function pendoStarted(pendo) {
  try {
    if (pendo.isReady()) {
      return true;
    }
  } catch (error) {
    // A stub or a broken agent has no usable isReady.
  }
  const queue = pendo._q;
  return Array.isArray(queue) && queue.some((call) => call && call[0] === 'initialize');
}
