// How long to keep looking for the analytics client when this script runs before its snippet.
const LOOKUP_INTERVAL_MS = 250;
const LOOKUP_ATTEMPTS = 40;

// Calls found(client) once win[globalKey] passes isReady; notReady(client) runs on each miss.
// When the global does not exist yet (this script came before the snippet), the snippet's own
// assignment is caught by a setter, so calls it queues right away are not missed; polling every
// 250 ms for 10 s covers clients that appear any other way. Exceptions stay here: they would
// otherwise surface in the page.
export function lookUpClient(win, globalKey, isReady, found, notReady) {
  let done = false;
  let attempts = 0;
  function check(client) {
    if (done) {
      return true;
    }
    try {
      if (isReady(client)) {
        done = true;
        found(client);
        return true;
      }
      notReady(client);
    } catch (error) {
      done = true;
      return true;
    }
    return false;
  }
  function poll() {
    if (!check(win[globalKey]) && attempts < LOOKUP_ATTEMPTS) {
      attempts += 1;
      win.setTimeout(poll, LOOKUP_INTERVAL_MS);
    }
  }
  if (!(globalKey in win)) {
    watchAssignment(win, globalKey, check);
  }
  poll();
}

function watchAssignment(win, globalKey, check) {
  try {
    Object.defineProperty(win, globalKey, {
      configurable: true,
      enumerable: false,
      get: function () {
        return undefined;
      },
      set: function (client) {
        // From here on it is the ordinary global the snippet meant to create.
        Object.defineProperty(win, globalKey, { value: client, writable: true, enumerable: true, configurable: true });
        check(client);
      },
    });
  } catch (error) {
    // A global that cannot be watched is found by polling instead.
  }
}
