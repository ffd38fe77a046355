// Calls found(client) once window[globalKey] passes isReady, now or when the global is next
// assigned: by a snippet that comes after this script, or by an SDK that replaces the snippet's
// queue with itself. Until then the global is an accessor that holds the value assigned to it;
// once found, it is an ordinary global again. notReady(client) runs on each miss. Exceptions stay
// here: from a setter they would surface in the page.
export function lookUpClient(win, globalKey, isReady, found, notReady) {
  let done = false;
  const check = (client) => {
    try {
      if (isReady(client)) {
        done = true;
        found(client);
      } else {
        notReady(client);
      }
    } catch (error) {
      done = true;
    }
    return done;
  };
  if (check(win[globalKey])) {
    return;
  }
  let current = win[globalKey];
  const plainGlobal = (value) => ({ value: value, writable: true, enumerable: true, configurable: true });
  try {
    Object.defineProperty(win, globalKey, {
      configurable: true,
      // An absent global stays out of Object.keys(window) until the page itself creates it.
      enumerable: globalKey in win,
      get: () => current,
      set: (client) => {
        current = client;
        if (done || check(client)) {
          Object.defineProperty(win, globalKey, plainGlobal(client));
        }
      },
    });
  } catch (error) {
    // A global that cannot be watched (non-configurable) is only checked once, above.
  }
}
