// The agent replays calls made on these stub methods once it has loaded. The list matches
// METHODS_TO_CAPTURE in @pendo/agent; the usual snippets omit clearSession, which then throws.
const QUEUED_METHODS = ['initialize', 'identify', 'updateOptions', 'pageLoad', 'track', 'clearSession'];

// While the agent is blocked or slow, calls wait in pendo._q; this bound keeps a blocked
// agent from growing that queue for as long as the page stays open.
export const MAX_QUEUED_CALLS = 500;

export function installPendoStub(win) {
  const pendo = (win.pendo = win.pendo || {});
  QUEUED_METHODS.forEach(function (method) {
    if (typeof pendo[method] === 'function') {
      return;
    }
    pendo[method] = function () {
      enqueue(pendo, [method].concat(Array.prototype.slice.call(arguments)));
    };
  });
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

export function agentAlreadyOnPage(win, doc) {
  const pendo = win.pendo;
  if (pendo && (pendo.VERSION || typeof pendo.getVisitorId === 'function')) {
    return true;
  }
  const scripts = doc.getElementsByTagName('script');
  for (let index = 0; index < scripts.length; index += 1) {
    const source = scripts[index].src || '';
    if (source.indexOf('/agent/static/') !== -1 && /\/pendo\.js(\?|#|$)/.test(source)) {
      return true;
    }
  }
  return false;
}

export function injectAgentScript(doc, url, nonce) {
  const script = doc.createElement('script');
  script.async = true;
  if (nonce) {
    script.nonce = nonce;
  }
  script.src = url;
  const firstScript = doc.getElementsByTagName('script')[0];
  if (firstScript && firstScript.parentNode) {
    firstScript.parentNode.insertBefore(script, firstScript);
  } else {
    (doc.head || doc.documentElement).appendChild(script);
  }
}

export function pendoIsInitialized(pendo) {
  try {
    return typeof pendo.isReady === 'function' && pendo.isReady() === true;
  } catch (error) {
    return false;
  }
}

export function initializeIsQueued(pendo) {
  const queue = pendo._q;
  if (!Array.isArray(queue)) {
    return false;
  }
  for (let index = 0; index < queue.length; index += 1) {
    if (Array.isArray(queue[index]) && queue[index][0] === 'initialize') {
      return true;
    }
  }
  return false;
}
