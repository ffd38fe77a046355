// Debug builds only: every decision goes to window.segmentPendoDebug.log and the console.
import { trackCallWarnings } from './pendo-limits.js';

let log = [];

export function startDebugLog(win) {
  log = [];
  Object.defineProperty(win, 'segmentPendoDebug', { value: { log: log }, configurable: true });
}

export function debug(kind, detail) {
  log.push({ kind: kind, detail: detail });
  try {
    console.log('[segment-pendo] ' + kind, detail);
  } catch (error) {
    // A missing console is no reason to fail.
  }
}

// The send for one matched subscription: logs it with its mapped fields and the call it makes
// (null when it makes none), and what of a track call Pendo would not show.
export function subscriptionSend(send, name, mapped) {
  const detail = { name: name, mapped: mapped, call: null };
  debug('subscription', detail);
  return (...call) => {
    detail.call = call;
    const warnings = trackCallWarnings(call);
    if (warnings.length > 0) {
      debug('pendo will not show', { name: name, warnings: warnings });
    }
    send(...call);
  };
}

// How long after the page's load event the script waits for its client before saying it has none.
export const NO_CLIENT_WAIT_MS = 5000;

// Without a client at win[globalKey] nothing reaches Pendo, silently: the usual cause is an app that loads
// analytics.js from npm and never assigns the global. A few seconds after the page's load event, a debug
// build says so, naming the global and the two fixes. loadedClient() is the client once connected.
export function warnWithoutClient(win, doc, globalKey, loadedClient) {
  const check = () => {
    if (loadedClient()) {
      return;
    }
    const seconds = NO_CLIENT_WAIT_MS / 1000;
    const where = `window.${globalKey}`;
    const message = Array.isArray(win[globalKey])
      ? `${where} still holds the snippet's queue ${seconds} s after the page loaded: its library never loaded ` +
        '(blocked, or a wrong write key?), so nothing reaches Pendo'
      : `no analytics client at ${where} ${seconds} s after the page loaded, so nothing reaches Pendo. With ` +
        "analytics.js from npm, either pass pendoPlugin from segment-pendo.mjs (segment-pendo build --format esm) " +
        `to AnalyticsBrowser.load({ writeKey, plugins: [pendoPlugin] }), or assign ${where} = analytics ` +
        '(what AnalyticsBrowser.load returns; for RudderStack, the RudderAnalytics instance)';
    debug('no client', { global: globalKey, message: message });
    try {
      console.warn('[segment-pendo] ' + message);
    } catch (error) {
      // A missing console is no reason to fail.
    }
  };
  const wait = () => win.setTimeout(check, NO_CLIENT_WAIT_MS);
  if (doc.readyState === 'complete') {
    wait();
  } else {
    win.addEventListener('load', wait);
  }
}
