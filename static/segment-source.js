// The analytics.js 2.0 instance, as it hands itself to the plugin's load.
let analytics;
// The stored group id, read once and then followed through group calls and reset: reading it parses
// cookies and storage (about 0.5 ms when none is stored).
let groupId;

// What analytics.js remembers. Names end in "_" so that the minifier may shorten them.
export const stored = {
  userId_: () => analytics.user().id(),
  anonymousId_: () => analytics.user().anonymousId(),
  userTraits_: () => analytics.user().traits(),
  groupId_: () => (groupId === undefined ? (groupId = analytics.group().id()) : groupId),
  groupTraits_: () => analytics.group().traits(),
};

// The loaded analytics.js instance, for optional feature modules that call it (undefined before load).
export const loadedClient = () => analytics;

// The destination plugin analytics.js 2.0 loads: the script registers it at the client's global
// (templates/main.js.jinja), the ES module exports it. A destination plugin sees each event once,
// after every source middleware (consent stamping included) has run, and honours the integrations
// object like any destination. onReady runs once analytics.js has initialized, onEvent for each event,
// onReset after analytics.reset(); none of them may throw into the page or into Segment's own delivery.
export function destinationPlugin(onReady, onEvent, onReset) {
  const guarded = (handler) => (context, instance) => {
    try {
      handler(context, instance);
    } catch (error) {
      // Never into the page or analytics.js.
    }
    return context;
  };
  const deliver = guarded(({ event }) => {
    if (event.type === 'group') {
      groupId = event.groupId;
    }
    onEvent(event);
  });
  const connect = guarded((context, instance) => {
    analytics = instance;
    // A group call that skips this destination (integrations) still changes the stored group.
    instance.on('group', (id) => {
      groupId = id;
    });
    instance.on(
      'reset',
      guarded(() => {
        groupId = null;
        if (onReset) {
          onReset();
        }
      }),
    );
    if (instance.initialized) {
      onReady();
    } else {
      instance.on('initialize', guarded(onReady));
    }
  });
  return {
    name: 'Pendo Web (segment-pendo)',
    alternativeNames: ['Pendo', 'Pendo Web (Actions)'],
    type: 'destination',
    isLoaded: () => true,
    track: deliver,
    identify: deliver,
    group: deliver,
    page: deliver,
    // analytics.js may chain on the promise load returns (async functions are ES2017).
    load: async (context, instance) => connect(context, instance),
  };
}
