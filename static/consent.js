// The consent gate: Segment's consent tools stamp each event with context.consent.categoryPreferences.
// Nothing is loaded or sent until an event shows every required category granted; once revoked,
// calls still waiting for the agent are dropped and a loaded agent stops sending.

import { own } from './event-values.js';

// Segment's consent wrapper tracks this event whenever the visitor changes their choice.
export const PREFERENCE_EVENT = 'Segment Consent Preference Updated';

// Returns allows(event). send makes a Pendo call; onGrant runs on each change to granted, once the
// agent sends again.
export function consentGate(win, categories, forwardPreferenceEvents, send, onGrant) {
  let granted = false;
  return (event) => {
    const preferences = own(own(own(event, 'context'), 'consent'), 'categoryPreferences');
    // An event without preferences leaves the state as it was.
    const now =
      preferences && typeof preferences === 'object'
        ? categories.every((category) => preferences[category] === true)
        : granted;
    if (now !== granted) {
      granted = now;
      if (now) {
        send('startSendingEvents');
        onGrant();
      } else {
        const queue = (win.pendo || {})._q;
        if (queue) {
          queue.length = 0;
        }
        send('stopSendingEvents');
      }
    }
    return granted && (forwardPreferenceEvents || event.event !== PREFERENCE_EVENT);
  };
}
