import { lookUpClient } from './client-lookup.js';

// RudderStack's JavaScript SDK (v3) has the same identify/group/track/page/reset calls as Segment
// but no plugin or middleware hook, so its methods are wrapped: each call is passed on unchanged,
// then rebuilt as a Segment-spec event from its arguments and the SDK's remembered state.
const WRAPPED_METHODS = ['identify', 'group', 'track', 'page', 'reset'];
const WRAPPED = Symbol.for('segment-pendo.wrapped');

function isSdk(client) {
  return !!client && !Array.isArray(client) && typeof client.getAnonymousId === 'function';
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isId(value) {
  return typeof value === 'string' || typeof value === 'number';
}

function read(client, getter) {
  try {
    return typeof client[getter] === 'function' ? client[getter]() : undefined;
  } catch (error) {
    return undefined;
  }
}

// Calls made on the snippet's queue before the SDK loads are remembered here, and replayed as
// events once the SDK (which replays them itself first) has taken the queue's place.
let pendingCalls = null;
let listeners = null;

// The SDK, once it has loaded.
let sdk = null;

// What the SDK remembers. Names end in "_" so that the minifier may shorten them.
export const stored = {
  userId_: () => read(sdk, 'getUserId'),
  anonymousId_: () => read(sdk, 'getAnonymousId'),
  userTraits_: () => read(sdk, 'getUserTraits'),
  groupId_: () => read(sdk, 'getGroupId'),
  groupTraits_: () => read(sdk, 'getGroupTraits'),
};

// The loaded SDK, for optional feature modules that call it (null before it has loaded).
export const loadedClient = () => sdk;

// onReady runs once the SDK has loaded (and again when it says it is ready), onEvent for each call,
// onReset after reset(); none of them may throw into the page or the SDK.
export function hookIntoClient(win, globalKey, onReady, onEvent, onReset) {
  const guarded = (handler) => () => {
    try {
      handler();
    } catch (error) {
      // Never into the page.
    }
  };
  lookUpClient(win, globalKey, (client) => {
    if (!isSdk(client)) {
      if (Array.isArray(client) && pendingCalls === null) {
        recordQueuedCalls(client);
      }
      return false;
    }
    sdk = client;
    onReady();
    if (typeof client.ready === 'function') {
      client.ready(guarded(onReady));
    }
    subscribeToEvents(client, onEvent);
    if (onReset) {
      listen(client, (calledSdk, method) => method === 'reset' && onReset());
    }
    return true;
  });
}

function recordQueuedCalls(queue) {
  pendingCalls = [];
  WRAPPED_METHODS.forEach(function (method) {
    const original = queue[method];
    queue[method] = function () {
      pendingCalls.push([method, Array.prototype.slice.call(arguments)]);
      if (typeof original === 'function') {
        return original.apply(this, arguments);
      }
      return queue.push([method].concat(Array.prototype.slice.call(arguments)));
    };
  });
}

export function eventFrom(client, method, args) {
  const event = {
    type: method,
    userId: read(client, 'getUserId'),
    anonymousId: read(client, 'getAnonymousId'),
    context: {},
  };
  if (method === 'identify') {
    if (isId(args[0])) {
      event.userId = args[0];
    }
    const ownTraits = isObject(args[0]) ? args[0] : args[1];
    event.traits = Object.assign({}, read(client, 'getUserTraits'), isObject(ownTraits) ? ownTraits : {});
  } else if (method === 'group') {
    event.groupId = isId(args[0]) ? args[0] : read(client, 'getGroupId');
    const ownTraits = isObject(args[0]) ? args[0] : args[1];
    event.traits = isObject(ownTraits) ? ownTraits : read(client, 'getGroupTraits');
  } else if (method === 'track') {
    event.event = args[0];
    event.properties = isObject(args[1]) ? args[1] : {};
  } else if (method === 'page') {
    const names = args.filter(function (arg) {
      return typeof arg === 'string';
    });
    event.name = names[names.length - 1];
    event.properties = args.filter(isObject)[0] || {};
  }
  return event;
}

function wrap(client) {
  if (client[WRAPPED]) {
    return;
  }
  Object.defineProperty(client, WRAPPED, { value: true });
  WRAPPED_METHODS.forEach(function (method) {
    const original = client[method];
    if (typeof original !== 'function') {
      return;
    }
    client[method] = function () {
      const result = original.apply(this, arguments);
      notify(client, method, Array.prototype.slice.call(arguments));
      return result;
    };
  });
}

function notify(client, method, args) {
  (listeners || []).forEach(function (listener) {
    try {
      listener(client, method, args);
    } catch (error) {
      // Nothing may reach the host page or the SDK's own delivery.
    }
  });
}

function listen(client, listener) {
  listeners = listeners || [];
  listeners.push(listener);
  wrap(client);
}

function subscribeToEvents(client, onEvent) {
  listen(client, function (sdk, method, args) {
    if (method !== 'reset') {
      onEvent(eventFrom(sdk, method, args));
    }
  });
  const replay = pendingCalls || [];
  pendingCalls = [];
  replay.forEach(function (call) {
    if (call[0] !== 'reset') {
      onEvent(eventFrom(client, call[0], call[1]));
    }
  });
}
