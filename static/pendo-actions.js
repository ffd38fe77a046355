// What each action sends to Pendo, given the fields its subscription's mapping produced.
// Each returns one Pendo call as [method, ...arguments], or null when there is nothing to send.
// remembered() reads the client's stored user and group; it is called only when the event itself
// lacks what is needed, because reading that state parses cookies and storage.
import { hasOwn } from './event-values.js';
import { LIMITS, asPendoId, filterKeys, isPlainObject, metadataWithId, visitorIdFor } from './pendo-data.js';

function currentVisitorId(event, remembered) {
  const fromEvent = visitorIdFor(event.userId, event.anonymousId);
  return fromEvent !== null ? fromEvent : visitorIdFor(remembered().userId, remembered().anonymousId);
}

export function identifyCall(event, remembered, mapped, allowKeys, denyKeys, withAccountTraits, withRememberedGroup) {
  const visitorId = asPendoId(mapped.visitorId) || currentVisitorId(event, remembered);
  if (visitorId === null) {
    return null;
  }
  const identity = { visitor: metadataWithId(filterKeys(mapped.visitorData, allowKeys, denyKeys), visitorId) };
  const accountId = asPendoId(mapped.accountId) || (withRememberedGroup ? asPendoId(remembered().groupId) : null);
  if (accountId !== null) {
    identity.account = withAccountTraits && accountId === asPendoId(remembered().groupId)
      ? metadataWithId(remembered().groupTraits, accountId)
      : { id: accountId };
  }
  return ['identify', identity];
}

// accountData is a fresh sanitized copy, so deleting from it touches nothing of the page's; the walk
// follows own keys only, so a path through "__proto__" never reaches a shared prototype.
function removePath(data, path) {
  let holder = data;
  for (let index = 0; index < path.length - 1 && isPlainObject(holder); index += 1) {
    holder = hasOwn.call(holder, path[index]) ? holder[path[index]] : null;
  }
  if (isPlainObject(holder)) {
    delete holder[path[path.length - 1]];
  }
}

export function groupCall(event, remembered, mapped, allowKeys, denyKeys, parentPathInAccountData) {
  const accountId = asPendoId(mapped.accountId);
  if (accountId === null) {
    return null;
  }
  const accountData = filterKeys(mapped.accountData, allowKeys, denyKeys);
  const parent = mapped.parentAccountData;
  const hasParent = isPlainObject(parent) && asPendoId(parent.id) !== null;
  if (hasParent && parentPathInAccountData !== null) {
    removePath(accountData, parentPathInAccountData);
  }
  const identity = { account: metadataWithId(accountData, accountId) };
  const visitorId = asPendoId(mapped.visitorId) || currentVisitorId(event, remembered);
  if (visitorId !== null) {
    identity.visitor = { id: visitorId };
  }
  if (hasParent) {
    identity.parentAccount = metadataWithId(parent, asPendoId(parent.id));
  }
  return ['identify', identity];
}

export function trackCall(mapped, allowKeys, denyKeys) {
  const name = mapped.event;
  // The agent drops a track call without a non-empty string name; a runaway one is not sent either.
  if (typeof name !== 'string' || name.trim() === '' || name.length > LIMITS.stringLength) {
    return null;
  }
  return ['track', name, filterKeys(mapped.metadata, allowKeys, denyKeys)];
}

export function pageCall(mapped) {
  return typeof mapped.url === 'string' && mapped.url !== '' ? ['pageLoad', mapped.url] : null;
}
