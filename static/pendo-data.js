// Pendo treats visitor ids with this prefix as anonymous (pendo.isAnonymousVisitor).
export const ANONYMOUS_PREFIX = '_PENDO_T_';

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

export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// Bounds on what reaches Pendo from one object, so hostile or runaway data (cycles, megabyte
// strings, deep nesting) becomes sane data instead of an exception inside the agent.
export const LIMITS = { depth: 6, keys: 500, stringLength: 10000 };
const NO_KEYS = [];

// A JSON-safe copy: strings cut to LIMITS.stringLength, non-finite numbers, functions and symbols
// dropped, Dates as ISO text, cycles and anything past LIMITS.depth or LIMITS.keys left out.
// "__proto__" keys are skipped: assigning one would swap the copy's prototype.
export function pendoValue(value, depth, ancestors) {
  if (value === null || typeof value === 'boolean') {
    return value;
  }
  if (typeof value === 'string') {
    return value.length > LIMITS.stringLength ? value.slice(0, LIMITS.stringLength) : value;
  }
  if (typeof value === 'number') {
    return isFinite(value) ? value : undefined;
  }
  if (typeof value !== 'object' || depth >= LIMITS.depth || ancestors.indexOf(value) !== -1) {
    return undefined;
  }
  if (value instanceof Date) {
    return isNaN(value.getTime()) ? undefined : value.toISOString();
  }
  ancestors.push(value);
  let copy;
  if (Array.isArray(value)) {
    copy = [];
    for (let index = 0; index < value.length && index < LIMITS.keys; index += 1) {
      const item = pendoValue(readKey(value, index), depth + 1, ancestors);
      copy.push(item === undefined ? null : item);
    }
  } else {
    copy = {};
    const keys = Object.keys(value);
    for (let index = 0; index < keys.length && index < LIMITS.keys; index += 1) {
      const item = keys[index] === '__proto__' ? undefined : pendoValue(readKey(value, keys[index]), depth + 1, ancestors);
      if (item !== undefined) {
        copy[keys[index]] = item;
      }
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
  if (!isPlainObject(source)) {
    return kept;
  }
  const safe = pendoValue(source, 0, []);
  Object.keys(safe).forEach(function (key) {
    if ((allow === null || allow.indexOf(key) !== -1) && deny.indexOf(key) === -1) {
      kept[key] = safe[key];
    }
  });
  return kept;
}

// The id is set last, so a trait named "id" never replaces the Pendo id.
export function metadataWithId(traits, id) {
  const metadata = filterKeys(traits, null, NO_KEYS);
  metadata.id = id;
  return metadata;
}

