// Calls connect(client) with window[globalKey] now and each time the global is next assigned (by a
// snippet that comes after this script, or by an SDK that replaces the snippet's queue with
// itself), until it returns something truthy. Until then the global is an accessor that holds the value
// assigned to it; once connected, it is an ordinary global again. Exceptions from connect stay
// here: from a setter they would surface in the page. Call it last: it may throw.
export function lookUpClient(win, globalKey, connect) {
  let done = false;
  const check = (client) => {
    try {
      done = done || connect(client);
    } catch (error) {
      done = true;
    }
    return done;
  };
  let current = win[globalKey];
  // A global that cannot be watched (non-configurable) makes defineProperty throw: the caller's guard
  // takes that, and the global was checked once, above.
  if (!check(current)) {
    Object.defineProperty(win, globalKey, {
      configurable: true,
      // An absent global stays out of Object.keys(window) until the page itself creates it.
      enumerable: globalKey in win,
      get: () => current,
      set: (client) => {
        current = client;
        if (check(client)) {
          // An ordinary global again: writable, enumerable and configurable.
          delete win[globalKey];
          win[globalKey] = client;
        }
      },
    });
  }
}
