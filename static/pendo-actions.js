// What each action sends to Pendo, given the fields its subscription's mapping produced: at most
// one call, made through send(method, ...arguments). stored reads what the client remembers; it is
// read only when the event itself lacks what is needed, because each read parses cookies and storage.
import { own } from './event-values.js';
import { asPendoId, isPlainObject, pendoData, visitorIdFor, withId } from './pendo-data.js';

const currentVisitorId = (e, stored) =>
  visitorIdFor(e.userId, e.anonymousId) || visitorIdFor(stored.userId_(), stored.anonymousId_());

export function identifyCall(send, stored, e, visitorId, visitorData, accountId, allow, deny, withAccountTraits, noFallback) {
  visitorId = asPendoId(visitorId) || currentVisitorId(e, stored);
  if (visitorId) {
    const identity = { visitor: withId(pendoData(visitorData, allow, deny), visitorId) };
    accountId = asPendoId(accountId) || (!noFallback && asPendoId(stored.groupId_()));
    if (accountId) {
      identity.account =
        withAccountTraits && accountId === asPendoId(stored.groupId_())
          ? withId(pendoData(stored.groupTraits_()), accountId)
          : { id: accountId };
    }
    send('identify', identity);
  }
}

// account is a fresh sanitized copy, so deleting from it touches nothing of the page's; the walk
// follows own keys only, so a path through "__proto__" never reaches a shared prototype.
const removePath = (holder, [key, ...rest]) =>
  isPlainObject(holder) && (rest.length ? removePath(own(holder, key), rest) : delete holder[key]);

export function groupCall(send, stored, e, visitorId, accountId, accountData, parent, parentPathInAccountData, allow, deny) {
  accountId = asPendoId(accountId);
  if (accountId) {
    const identity = { account: pendoData(accountData, allow, deny) };
    const parentId = isPlainObject(parent) && asPendoId(parent.id);
    if (parentId) {
      if (parentPathInAccountData) {
        removePath(identity.account, parentPathInAccountData);
      }
      identity.parentAccount = withId(pendoData(parent), parentId);
    }
    withId(identity.account, accountId);
    visitorId = asPendoId(visitorId) || currentVisitorId(e, stored);
    if (visitorId) {
      identity.visitor = { id: visitorId };
    }
    send('identify', identity);
  }
}

export function trackCall(send, name, metadata, allow, deny) {
  // The agent drops a track call without a non-empty string name; a runaway one is not sent either.
  if (typeof name === 'string' && asPendoId(name)) {
    send('track', name, pendoData(metadata, allow, deny));
  }
}

export function pageCall(send, url) {
  if (typeof url === 'string' && url) {
    send('pageLoad', url);
  }
}
