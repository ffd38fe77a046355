// The consent gate: Segment's consent tools stamp each event with context.consent.categoryPreferences.
// Nothing is loaded or sent until an event shows every required category granted; once revoked,
// calls still waiting for the agent are dropped and a loaded agent stops sending.

import { own } from './event-values.js';
import { isPlainObject } from './pendo-data.js';

// Segment's consent wrapper tracks this event whenever the visitor changes their choice; Pendo
// gets it only when [consent] forward_preference_events says so.
export const isPreferenceEvent = (event) => event.event === 'Segment Consent Preference Updated';

// Returns granted(event). send makes a Pendo call; onGrant runs on each change to granted, once the
// agent sends again.
export function consentGate(win, categories, send, onGrant) {
  let granted = false;
  return (event) => {
    const preferences = own(own(own(event, 'context'), 'consent'), 'categoryPreferences');
    // An event without preferences leaves the state as it was.
    if (isPlainObject(preferences) && categories.every((category) => preferences[category] === true) !== granted) {
      granted = !granted;
      send(granted ? 'startSendingEvents' : 'stopSendingEvents');
      if (granted) {
        onGrant();
      } else {
        // Calls still waiting for the agent are dropped.
        ((win.pendo || {})._q || []).length = 0;
      }
    }
    return granted;
  };
}
