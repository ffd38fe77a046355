// Records every call the page makes on window.pendo (initialize, identify, updateOptions, track, ...),
// for segment-pendo's test kit. It wraps the agent's methods without changing what they do, and posts
// each call to the host that served the agent, where the test's browser routing answers and keeps it.
(function (win) {
  if (win.__segmentPendoKit) {
    return;
  }
  var METHODS = ['initialize', 'identify', 'updateOptions', 'pageLoad', 'track', 'clearSession'];
  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src).origin : win.location.origin;
  var sequence = 0;
  function send(method, args) {
    var body;
    try {
      body = JSON.stringify({ seq: sequence++, method: method, args: args });
    } catch (error) {
      body = JSON.stringify({ seq: sequence++, method: method, args: [], unserializable: String(error) });
    }
    try {
      win.fetch(origin + '/data/segment-pendo-kit/call', { method: 'POST', body: body, keepalive: true });
    } catch (error) {
      // Recording must never break the page.
    }
  }
  function wrap() {
    var pendo = win.pendo;
    if (!pendo) {
      return;
    }
    METHODS.forEach(function (method) {
      var original = pendo[method];
      if (typeof original !== 'function' || original.__segmentPendoKit) {
        return;
      }
      var recorded = function () {
        send(method, Array.prototype.slice.call(arguments));
        return original.apply(this, arguments);
      };
      recorded.__segmentPendoKit = true;
      pendo[method] = recorded;
    });
  }
  win.__segmentPendoKit = {
    // Calls made before the agent arrived wait in the stub's queue: they are the first ones recorded.
    recordQueue: function () {
      var queue = (win.pendo && win.pendo._q) || [];
      for (var i = 0; i < queue.length; i++) {
        if (queue[i] && typeof queue[i][0] === 'string') {
          send(queue[i][0], Array.prototype.slice.call(queue[i], 1));
        }
      }
    },
    // The agent may install its methods a little after its script ran: wrap again for a while.
    wrap: function () {
      wrap();
      var rounds = 0;
      var timer = win.setInterval(function () {
        wrap();
        if (++rounds > 200) {
          win.clearInterval(timer);
        }
      }, 50);
    },
  };
})(window);
