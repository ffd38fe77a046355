// How long to keep looking for the analytics client when this script runs before its snippet.
const LOOKUP_INTERVAL_MS = 250;
const LOOKUP_ATTEMPTS = 40;

// Calls found(client) once win[globalKey] passes isReady, checking now and then every 250 ms for
// 10 s; notReady(client) runs on each miss. Exceptions stay here: timer callbacks would surface
// them in the page.
export function lookUpClient(win, globalKey, isReady, found, notReady) {
  let attempts = 0;
  function attempt() {
    const client = win[globalKey];
    try {
      if (isReady(client)) {
        found(client);
        return;
      }
      notReady(client);
    } catch (error) {
      return;
    }
    if (attempts < LOOKUP_ATTEMPTS) {
      attempts += 1;
      win.setTimeout(attempt, LOOKUP_INTERVAL_MS);
    }
  }
  attempt();
}
