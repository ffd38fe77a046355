// Debug builds only: what Pendo would accept but not show, from its documented track event limits.
// Property names: letters, digits and underscores, at most 32 characters, not starting with a digit
// and not both starting and ending with "__". The properties' JSON: at most 512 bytes.
const SHOWN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const RESERVED_NAME = /^__.*__$/;
export const MAX_PROPERTIES_BYTES = 512;

function utf8Length(text) {
  return typeof TextEncoder === 'function' ? new TextEncoder().encode(text).length : text.length;
}

export function trackCallWarnings(call) {
  if (call[0] !== 'track') {
    return [];
  }
  const properties = call[2] || {};
  const warnings = Object.keys(properties)
    .filter((name) => !SHOWN_NAME.test(name) || RESERVED_NAME.test(name))
    .map((name) => `property "${name}" will not show in Pendo: use letters, digits and _ (at most 32, not starting with a digit)`);
  const bytes = utf8Length(JSON.stringify(properties));
  if (bytes > MAX_PROPERTIES_BYTES) {
    warnings.push(`properties are ${bytes} bytes of JSON: Pendo shows more than ${MAX_PROPERTIES_BYTES} as "event properties JSON too large"`);
  }
  return warnings;
}
