// The consent gate: Segment's consent tools stamp each event with context.consent.categoryPreferences.
// Nothing is loaded or sent until an event shows every required category granted; once revoked,
// calls still waiting for the agent are dropped and a loaded agent stops sending.

import { own } from './event-values.js';
import { isPlainObject } from './pendo-data.js';

// Returns passes(event): consent is granted, and the event is not the one Segment's consent wrapper
// tracks whenever the visitor changes their choice (Pendo gets that one only with
// forwardPreferenceEvents, [consent] forward_preference_events). send makes a Pendo call; onGrant runs
// on each change to granted, once the agent sends again.
export function consentGate(win, categories, send, onGrant, forwardPreferenceEvents) {
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
    return granted && (forwardPreferenceEvents || event.event !== 'Segment Consent Preference Updated');
  };
}
