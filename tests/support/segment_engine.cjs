// Runs mappings and FQL subscriptions through Segment's own engines (the npm packages Segment's
// action destinations are built on), so tests compare against Segment's behaviour, not our reading of it.
// stdin: {"mapping": {...}?, "subscribe": "FQL"?, "events": [...]}
// stdout: {"mappingError": str|null, "subscribeError": str|null,
//          "results": [{"mapped": value|undefined, "error": str|undefined, "matches": bool|undefined}]}
'use strict';
const path = require('path');
const { transform } = require('@segment/actions-core');
const { parseFql, validate: matchesFql } = require('@segment/destination-subscriptions');
// validate() is not in the package's export map; it is the check Segment runs when a mapping is saved.
const validateMapping = require(
  path.join(path.dirname(require.resolve('@segment/actions-core')), 'mapping-kit', 'validate.js'),
).default;

function read(stream) {
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => (text += chunk));
    stream.on('end', () => resolve(text));
  });
}

function message(error) {
  return error && error.message ? error.message : String(error);
}

(async () => {
  const input = JSON.parse(await read(process.stdin));
  const output = { mappingError: null, subscribeError: null, results: [] };
  if (input.mapping !== undefined) {
    try {
      validateMapping(input.mapping);
    } catch (error) {
      output.mappingError = message(error);
    }
  }
  let ast = null;
  if (input.subscribe !== undefined) {
    const parsed = parseFql(input.subscribe);
    if (parsed.error) {
      output.subscribeError = message(parsed.error);
    } else {
      ast = parsed;
    }
  }
  for (const event of input.events || []) {
    const result = {};
    if (input.mapping !== undefined && output.mappingError === null) {
      try {
        result.mapped = transform(input.mapping, event);
      } catch (error) {
        result.error = message(error);
      }
    }
    if (ast !== null) {
      result.matches = matchesFql(ast, event);
    }
    output.results.push(result);
  }
  process.stdout.write(JSON.stringify(output));
})();
