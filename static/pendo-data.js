// Pendo treats visitor ids with this prefix as anonymous (pendo.isAnonymousVisitor).
export const ANONYMOUS_PREFIX = '_PENDO_T_';

export function asPendoId(value) {
  if (typeof value === 'number' && isFinite(value)) {
    return String(value);
  }
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

export function visitorIdFor(userId, anonymousId) {
  const known = asPendoId(userId);
  if (known !== null) {
    return known;
  }
  const anonymous = asPendoId(anonymousId);
  return anonymous === null ? null : ANONYMOUS_PREFIX + anonymous;
}

export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// Copies own keys onto a fresh object and sets the id last, so a trait named "id" never
// replaces the Pendo id. "__proto__" is skipped: assigning it would swap the copy's prototype.
export function metadataWithId(traits, id) {
  const metadata = {};
  if (isPlainObject(traits)) {
    Object.keys(traits).forEach(function (key) {
      if (key !== '__proto__') {
        metadata[key] = traits[key];
      }
    });
  }
  metadata.id = id;
  return metadata;
}

// A copy of an object's own keys, kept by allow (a list, or null for all) and dropped by deny.
export function filterKeys(source, allow, deny) {
  const kept = {};
  if (!isPlainObject(source)) {
    return kept;
  }
  Object.keys(source).forEach(function (key) {
    if (key !== '__proto__' && (allow === null || allow.indexOf(key) !== -1) && deny.indexOf(key) === -1) {
      kept[key] = source[key];
    }
  });
  return kept;
}
