/*
 * The Segment snippet as the demo and the browser tests use it: a stub that queues
 * [method, ...args] calls until analytics.js loads and replays them, written to the snippet's
 * public contract. Settings come from the script tag:
 *   data-write-key   the Segment source's write key (required)
 *   data-global-key  the global to install under (default "analytics"; analytics.js reads it
 *                    back from data-global-segment-analytics-key on its own tag)
 *   data-cdn         where analytics.js and its settings are served from (default Segment's CDN)
 *   data-page        "false" to skip the snippet's usual page() call
 */
(function (tag) {
  var writeKey = tag.getAttribute('data-write-key');
  var key = tag.getAttribute('data-global-key') || 'analytics';
  var cdn = tag.getAttribute('data-cdn') || 'https://cdn.segment.com';
  if (cdn.charAt(0) === '/') {
    cdn = window.location.origin + cdn;
  }
  var stub = (window[key] = window[key] || []);
  if (stub.initialize || stub.invoked) {
    return;
  }
  stub.invoked = true;
  stub.methods = [
    'trackSubmit', 'trackClick', 'trackLink', 'trackForm', 'pageview', 'identify', 'reset', 'group',
    'track', 'ready', 'alias', 'debug', 'page', 'screen', 'once', 'off', 'on', 'addSourceMiddleware',
    'addIntegrationMiddleware', 'setAnonymousId', 'addDestinationMiddleware', 'register'
  ];
  stub.methods.forEach(function (method) {
    stub[method] = function () {
      var call = Array.prototype.slice.call(arguments);
      call.unshift(method);
      stub.push(call);
      return stub;
    };
  });
  stub.load = function (loadKey, options) {
    var script = document.createElement('script');
    script.async = true;
    script.src = cdn + '/analytics.js/v1/' + loadKey + '/analytics.min.js';
    if (key !== 'analytics') {
      script.setAttribute('data-global-segment-analytics-key', key);
    }
    var first = document.getElementsByTagName('script')[0];
    first.parentNode.insertBefore(script, first);
    stub._loadOptions = options;
  };
  if (tag.getAttribute('data-cdn')) {
    stub._cdn = cdn;
  }
  stub._writeKey = writeKey;
  stub.SNIPPET_VERSION = '5.2.1';
  stub.load(writeKey);
  if (tag.getAttribute('data-page') !== 'false') {
    stub.page();
  }
})(document.currentScript);
