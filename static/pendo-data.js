// Pendo treats visitor ids with this prefix as anonymous (pendo.isAnonymousVisitor).
export const ANONYMOUS_PREFIX = '_PENDO_T_';

// Bounds on what reaches Pendo from one object, so hostile or runaway data (cycles, megabyte
// strings, deep nesting) becomes sane data instead of an exception inside the agent.
export const MAX_TEXT = 10000;
const MAX_DEPTH = 6;
const MAX_KEYS = 500;

// The value as a Pendo id (text), or a falsy value when it cannot be one.
export const asPendoId = (value) =>
  typeof value === 'number'
    ? isFinite(value) && String(value)
    : typeof value === 'string' && value.trim() && value.length <= MAX_TEXT && value;

export const visitorIdFor = (userId, anonymousId) =>
  asPendoId(userId) || (asPendoId(anonymousId) && ANONYMOUS_PREFIX + anonymousId);

export const isPlainObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

// A JSON-safe copy: strings cut to MAX_TEXT, non-finite numbers, functions and symbols dropped,
// Dates as ISO text, cycles and anything past MAX_DEPTH or MAX_KEYS left out, a getter that throws
// read as nothing. "__proto__" keys are skipped: assigning one would swap the copy's prototype.
// ancestors holds the objects being copied around this one (so its length is the depth). keep(key),
// when given, picks the top level's keys, so that filtering costs no second copy.
export function pendoValue(value, ancestors, keep) {
  const type = typeof value;
  if (type !== 'object' || value === null) {
    // isFinite passes finite numbers, booleans and null, and fails undefined; for a symbol or a bigint it
    // throws, which leaves the value out like the getter that throws below.
    return type === 'string' ? value.slice(0, MAX_TEXT) : type !== 'function' && isFinite(value) ? value : undefined;
  }
  if (ancestors.length >= MAX_DEPTH || ancestors.includes(value)) {
    return undefined;
  }
  if (value instanceof Date) {
    // ISO text; an invalid Date gives null, which is left out like other unsendable values.
    return value.toJSON() || undefined;
  }
  ancestors.push(value);
  const isList = Array.isArray(value);
  const copy = isList ? [] : {};
  let count = 0;
  for (const key of isList ? value.keys() : Object.keys(value)) {
    if (count++ === MAX_KEYS) {
      break;
    }
    let item;
    if (key !== '__proto__' && (!keep || keep(key))) {
      try {
        item = pendoValue(value[key], ancestors);
      } catch {
        // A getter that threw: nothing to send.
      }
    }
    // A list keeps its positions (null where an item cannot be sent); an object drops such keys.
    if (item !== undefined) {
      copy[key] = item;
    } else if (isList) {
      copy[key] = null;
    }
  }
  ancestors.pop();
  return copy;
}

// A Pendo-safe copy of an object's keys: those in allow (all when it is absent) and not in deny.
// (A Date copies to text, which is no object of keys.)
export function pendoData(source, allow, deny) {
  const copy =
    isPlainObject(source) &&
    pendoValue(source, [], (key) => (!allow || allow.includes(key)) && !(deny && deny.includes(key)));
  return typeof copy === 'object' ? copy : {};
}

// The id is set last, so a trait named "id" never replaces the Pendo id.
export const withId = (data, id) => ((data.id = id), data);
