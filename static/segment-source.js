// How long to keep looking for the analytics client when this script runs before its snippet.
const LOOKUP_INTERVAL_MS = 250;
const LOOKUP_ATTEMPTS = 40;

export function whenClientAppears(win, globalKey, connect) {
  let attempts = 0;
  function lookUp() {
    const client = win[globalKey];
    if (client && typeof client.addSourceMiddleware === 'function') {
      try {
        connect(client);
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
export function subscribeToEvents(client, onEvent) {
  client.addSourceMiddleware(function (middleware) {
    try {
      onEvent(middleware.payload.obj);
    } catch (error) {
      // Nothing may reach the host page or stop Segment's own delivery.
    }
    middleware.next(middleware.payload);
  });
}

// analytics.js 2.0 emits "reset" after analytics.reset() has cleared the user.
export function onReset(client, handler) {
  client.on('reset', function () {
    try {
      handler();
    } catch (error) {
      // Never into the page.
    }
  });
}

export function loadedClient(win, globalKey) {
  const client = win[globalKey];
  return !!client && !Array.isArray(client) && typeof client.user === 'function' ? client : null;
}

export function readStoredIdentity(client) {
  const user = client.user();
  const group = typeof client.group === 'function' ? client.group() : null;
  return {
    userId: user.id(),
    anonymousId: user.anonymousId(),
    userTraits: user.traits(),
    groupId: group ? group.id() : null,
    groupTraits: group ? group.traits() : null,
  };
}
