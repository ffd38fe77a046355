import { lookUpClient } from './client-lookup.js';

const isClient = (client) => !!client && (Array.isArray(client) || typeof client.register === 'function');

// The snippet's queue (an array) or a loaded analytics.js 2.0: either takes our registration.
export function whenClientAppears(win, globalKey, connect) {
  lookUpClient(win, globalKey, isClient, connect, () => {});
}

export const PLUGIN_NAME = 'Pendo Web (segment-pendo)';

// A destination plugin sees each event once, after every source middleware (consent stamping
// included) has run, and honours the integrations object like any destination. analytics.js 2.0
// replays a queued registration before the calls queued with it; older snippets lack a register
// stub, so the call is queued by hand in the same [method, ...args] form. (analytics.js 1.0, which
// Segment no longer serves, has no plugins and is not supported.)
export function subscribeToEvents(client, onEvent) {
  const deliver = (context) => {
    try {
      onEvent(context.event);
    } catch (error) {
      // Nothing may reach the host page or Segment's own delivery.
    }
    return context;
  };
  const plugin = {
    name: PLUGIN_NAME,
    alternativeNames: ['Pendo', 'Pendo Web (Actions)'],
    type: 'destination',
    version: '1.0.0',
    isLoaded: () => true,
    load: () => Promise.resolve(),
  };
  for (const method of ['track', 'identify', 'group', 'page']) {
    plugin[method] = deliver;
  }
  if (Array.isArray(client)) {
    client.push(['register', plugin]);
  } else {
    Promise.resolve(client.register(plugin)).catch(() => {});
  }
}

// analytics.js 2.0 emits "reset" after analytics.reset() has cleared the user.
export function onReset(client, handler) {
  client.on('reset', () => {
    try {
      handler();
    } catch (error) {
      // Never into the page.
    }
  });
}

// The loaded analytics.js 2.0: the global itself once it has loaded, or, for the npm package's
// AnalyticsBrowser assigned to the global, the instance it holds once loaded.
export function loadedClient(win, globalKey) {
  const client = win[globalKey];
  const analytics = client && client.instance ? client.instance : client;
  return !!analytics && analytics.initialized === true && typeof analytics.user === 'function' ? analytics : null;
}

// Getters, so that only what is used is read: each one parses cookies or storage.
export function readStoredIdentity(client) {
  return {
    get userId() {
      return client.user().id();
    },
    get anonymousId() {
      return client.user().anonymousId();
    },
    get userTraits() {
      return client.user().traits();
    },
    get groupId() {
      return typeof client.group === 'function' ? client.group().id() : null;
    },
    get groupTraits() {
      return typeof client.group === 'function' ? client.group().traits() : null;
    },
  };
}
