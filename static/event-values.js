// Helpers the compiled subscriptions and mappings call. Each mirrors a function of the Python
// reference evaluator (generator/fql.py, generator/mapping.py), which the tests hold them to.

export const hasOwn = {}.hasOwnProperty;

// One own key of an object: what Segment's preset mappings compile to.
export const own = (value, key) =>
  value !== null && typeof value === 'object' && hasOwn.call(value, key) ? value[key] : undefined;

// Own keys only: a path through "__proto__" or "constructor" finds nothing instead of a prototype.
// Segment's engines read a string's length like an array's (an own property of arrays only).
export const pathOf = (root, segments) =>
  segments.reduce(
    (current, segment) =>
      typeof current === 'string' && segment === 'length' ? current.length : own(current, segment),
    root,
  );

// A mapped object, written as an object literal with computed keys (so that a key named "__proto__"
// is an ordinary own property, not the prototype), without its undefined values.
export function objectOf(object) {
  for (const key of Object.keys(object)) {
    if (object[key] === undefined) {
      delete object[key];
    }
  }
  return object;
}

export const isPresent = (value) => value !== undefined && value !== null;
export const presentOr = (value, otherwise) => value ?? otherwise;

// Segment's @if "blank" takes its then-branch when the value is NOT blank, with a loose compare.
// eslint-disable-next-line eqeqeq
export const isFilled = (value) => isPresent(value) && value != '';

const isNumber = (value) => typeof value === 'number';

// As in Segment's engine, a negated text test (!contains, !match) is still false when the field is not text.
// The tests are only read as conditions: ^ with negated (true or absent) flips the answer as a 0 or 1.
export const containsText = (value, text, negated) => typeof value === 'string' && value.includes(text) ^ negated;
export const startsWithText = (value, prefix, negated) => typeof value === 'string' && value.startsWith(prefix) ^ negated;
export const endsWithText = (value, suffix, negated) => typeof value === 'string' && value.endsWith(suffix) ^ negated;
export const lessThan = (value, limit) => isNumber(value) && value < limit;
export const atMost = (value, limit) => isNumber(value) && value <= limit;
export const greaterThan = (value, limit) => isNumber(value) && value > limit;
export const atLeast = (value, limit) => isNumber(value) && value >= limit;
export const numberEquals = (value, expected) => isNumber(value) && value === expected;
export const numberDiffers = (value, expected) => isNumber(value) && value !== expected;
export const isOneOf = (value, list) => typeof value === 'string' && list.includes(value);
