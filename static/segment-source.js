// How long to keep looking for the Segment client when this script runs before the snippet.
const LOOKUP_INTERVAL_MS = 250;
const LOOKUP_ATTEMPTS = 40;

export function whenSegmentAppears(win, globalKey, connect) {
  let attempts = 0;
  function lookUp() {
    const analytics = win[globalKey];
    if (analytics && typeof analytics.addSourceMiddleware === 'function') {
      try {
        connect(analytics);
      } catch (error) {
        // A timer callback's exception would surface in the page.
      }
    } else if (attempts < LOOKUP_ATTEMPTS) {
      attempts += 1;
      win.setTimeout(lookUp, LOOKUP_INTERVAL_MS);
    }
  }
  lookUp();
}

// A source middleware sees every event exactly once, with the full Segment payload, whether it
// was made before analytics.js loaded (the snippet's queue) or after; the snippet queues this
// registration like any other call, and analytics.js applies it before replaying the queue.
export function subscribeToEvents(analytics, onEvent) {
  analytics.addSourceMiddleware(function (middleware) {
    try {
      onEvent(middleware.payload.obj);
    } catch (error) {
      // Nothing may reach the host page or stop Segment's own delivery.
    }
    middleware.next(middleware.payload);
  });
}

export function isLoadedClient(analytics) {
  return !!analytics && !Array.isArray(analytics) && typeof analytics.user === 'function';
}

export function readStoredIdentity(analytics) {
  const user = analytics.user();
  const group = typeof analytics.group === 'function' ? analytics.group() : null;
  return {
    userId: user.id(),
    anonymousId: user.anonymousId(),
    userTraits: user.traits(),
    groupId: group ? group.id() : null,
    groupTraits: group ? group.traits() : null,
  };
}
