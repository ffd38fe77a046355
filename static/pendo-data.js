// Pendo treats visitor ids with this prefix as anonymous (pendo.isAnonymousVisitor).
export const ANONYMOUS_PREFIX = '_PENDO_T_';

// Bounds on what reaches Pendo from one object, so hostile or runaway data (cycles, megabyte
// strings, deep nesting) becomes sane data instead of an exception inside the agent.
export const LIMITS = { depth: 6, keys: 500, stringLength: 10000 };

export function asPendoId(value) {
  if (typeof value === 'number' && isFinite(value)) {
    return String(value);
  }
  return typeof value === 'string' && value.trim() !== '' && value.length <= LIMITS.stringLength ? value : null;
}

export function visitorIdFor(userId, anonymousId) {
  const known = asPendoId(userId);
  if (known !== null) {
    return known;
  }
  const anonymous = asPendoId(anonymousId);
  return anonymous === null ? null : ANONYMOUS_PREFIX + anonymous;
}

export const isPlainObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

// A JSON-safe copy: strings cut to LIMITS.stringLength, non-finite numbers, functions and symbols
// dropped, Dates as ISO text, cycles and anything past LIMITS.depth or LIMITS.keys left out.
// "__proto__" keys are skipped: assigning one would swap the copy's prototype.
export function pendoValue(value, depth, ancestors) {
  const type = typeof value;
  if (value === null || type === 'boolean') {
    return value;
  }
  if (type === 'string') {
    return value.slice(0, LIMITS.stringLength);
  }
  if (type === 'number') {
    return isFinite(value) ? value : undefined;
  }
  if (type !== 'object' || depth >= LIMITS.depth || ancestors.indexOf(value) !== -1) {
    return undefined;
  }
  if (value instanceof Date) {
    return isNaN(value) ? undefined : value.toISOString();
  }
  ancestors.push(value);
  const isList = Array.isArray(value);
  const copy = isList ? [] : {};
  const keys = isList ? value.map((item, index) => index) : Object.keys(value);
  for (const key of keys.slice(0, LIMITS.keys)) {
    const item = key === '__proto__' ? undefined : pendoValue(readKey(value, key), depth + 1, ancestors);
    if (isList) {
      copy.push(item === undefined ? null : item);
    } else if (item !== undefined) {
      copy[key] = item;
    }
  }
  ancestors.pop();
  return copy;
}

// A getter that throws yields nothing rather than an exception.
function readKey(object, key) {
  try {
    return object[key];
  } catch (error) {
    return undefined;
  }
}

// A Pendo-safe copy of an object's keys, kept by allow (a list, or null for all) and dropped by deny.
export function filterKeys(source, allow, deny) {
  const kept = {};
  if (isPlainObject(source)) {
    const safe = pendoValue(source, 0, []);
    for (const key of Object.keys(safe)) {
      if ((allow === null || allow.indexOf(key) !== -1) && deny.indexOf(key) === -1) {
        kept[key] = safe[key];
      }
    }
  }
  return kept;
}

// The id is set last, so a trait named "id" never replaces the Pendo id.
export function metadataWithId(traits, id) {
  const metadata = filterKeys(traits, null, []);
  metadata.id = id;
  return metadata;
}
