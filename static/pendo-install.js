// The agent replays calls made on these stub methods once it has loaded. The list matches
// METHODS_TO_CAPTURE in @pendo/agent; the usual snippets omit clearSession, which then throws.
const QUEUED_METHODS = ['initialize', 'identify', 'updateOptions', 'pageLoad', 'track', 'clearSession'];

// While the agent is blocked or slow, calls wait in pendo._q; this bound keeps a blocked
// agent from growing that queue for as long as the page stays open.
export const MAX_QUEUED_CALLS = 500;

export function installPendoStub(win) {
  const pendo = (win.pendo = win.pendo || {});
  for (const method of QUEUED_METHODS) {
    if (typeof pendo[method] !== 'function') {
      pendo[method] = (...args) => enqueue(pendo, [method, ...args]);
    }
  }
  return pendo;
}

function enqueue(pendo, call) {
  const queue = (pendo._q = pendo._q || []);
  // initialize must run before anything else it queued behind, as in Pendo's own snippet.
  if (call[0] === 'initialize') {
    queue.unshift(call);
  } else {
    queue.push(call);
  }
  if (queue.length > MAX_QUEUED_CALLS) {
    queue.splice(queue[0][0] === 'initialize' ? 1 : 0, 1);
  }
}

const AGENT_SCRIPT = /\/agent\/static\/[^?#]*\/pendo\.js([?#]|$)/;

export function agentAlreadyOnPage(win, doc) {
  const pendo = win.pendo;
  return (
    !!(pendo && (pendo.VERSION || typeof pendo.getVisitorId === 'function')) ||
    Array.prototype.some.call(doc.scripts, (script) => AGENT_SCRIPT.test(script.src))
  );
}

export function injectAgentScript(doc, url, nonce) {
  const script = doc.createElement('script');
  script.async = true;
  if (nonce) {
    script.nonce = nonce;
  }
  script.src = url;
  const firstScript = doc.scripts[0];
  if (firstScript && firstScript.parentNode) {
    firstScript.parentNode.insertBefore(script, firstScript);
  } else {
    (doc.head || doc.documentElement).appendChild(script);
  }
}

export function pendoIsInitialized(pendo) {
  try {
    return pendo.isReady() === true;
  } catch (error) {
    return false;
  }
}

export function initializeIsQueued(pendo) {
  return Array.isArray(pendo._q) && pendo._q.some((call) => Array.isArray(call) && call[0] === 'initialize');
}
