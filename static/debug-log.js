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
