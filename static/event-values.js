// Helpers the compiled subscriptions and mappings call. Each mirrors a function of the Python
// reference evaluator (generator/fql.py, generator/mapping.py), which the tests hold them to.

const hasOwn = Object.prototype.hasOwnProperty;

// Own keys only: a path through "__proto__" or "constructor" finds nothing instead of a prototype.
export function pathOf(root, segments) {
  let current = root;
  for (let index = 0; index < segments.length; index += 1) {
    if (current === null || typeof current !== 'object' || !hasOwn.call(current, segments[index])) {
      return undefined;
    }
    current = current[segments[index]];
  }
  return current;
}

// Builds an object from [key, value, key, value, ...], leaving out undefined values. Keys are
// defined rather than assigned, so a key named "__proto__" stays an ordinary property.
export function objectOf(pairs) {
  const result = {};
  for (let index = 0; index < pairs.length; index += 2) {
    if (pairs[index + 1] !== undefined) {
      Object.defineProperty(result, pairs[index], {
        value: pairs[index + 1],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return result;
}

export function templateOf(parts) {
  let text = '';
  for (let index = 0; index < parts.length; index += 1) {
    const part = parts[index];
    text += part === undefined || part === null ? '' : String(part);
  }
  return text;
}

export function isPresent(value) {
  return value !== undefined && value !== null;
}

// Segment's @if "blank" takes its then-branch when the value is NOT blank, with a loose compare.
export function isFilled(value) {
  // eslint-disable-next-line eqeqeq
  return value !== undefined && value !== null && value != '';
}

export function containsText(value, text) {
  return typeof value === 'string' && value.indexOf(text) !== -1;
}

export function startsWithText(value, prefix) {
  return typeof value === 'string' && value.slice(0, prefix.length) === prefix;
}

export function endsWithText(value, suffix) {
  return typeof value === 'string' && value.length >= suffix.length && value.slice(value.length - suffix.length) === suffix;
}

export function lessThan(value, limit) {
  return typeof value === 'number' && value < limit;
}

export function atMost(value, limit) {
  return typeof value === 'number' && value <= limit;
}

export function greaterThan(value, limit) {
  return typeof value === 'number' && value > limit;
}

export function atLeast(value, limit) {
  return typeof value === 'number' && value >= limit;
}

export function numberEquals(value, expected) {
  return typeof value === 'number' && value === expected;
}

export function numberDiffers(value, expected) {
  return typeof value === 'number' && value !== expected;
}

export function isOneOf(value, list) {
  return typeof value === 'string' && list.indexOf(value) !== -1;
}
