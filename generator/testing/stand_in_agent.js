// A recording stand-in for Pendo's agent, served by segment-pendo's test kit when the real agent
// (npm @pendo/agent) is not installed. It offers the agent's calls the page and segment-pendo use, keeps
// who the visitor and account are, and sends nothing anywhere: the kit's recorder keeps the calls.
(function (win) {
  var pendo = (win.pendo = win.pendo || {});
  var queued = pendo._q || [];
  var state = { ready: false, visitor: null, account: null };
  function take(options) {
    if (!options || typeof options !== 'object') {
      return;
    }
    if (options.visitor && typeof options.visitor === 'object') {
      state.visitor = options.visitor.id == null ? state.visitor : String(options.visitor.id);
    }
    if (options.account && typeof options.account === 'object') {
      state.account = options.account.id == null ? state.account : String(options.account.id);
    }
  }
  pendo.VERSION = 'segment-pendo-stand-in';
  pendo.initialize = function (options) {
    take(options);
    state.ready = true;
  };
  pendo.identify = function (visitor, account) {
    if (typeof visitor === 'string' || typeof visitor === 'number') {
      take({ visitor: { id: visitor }, account: account == null ? undefined : { id: account } });
    } else {
      take(visitor);
    }
  };
  pendo.updateOptions = take;
  pendo.pageLoad = function () {};
  pendo.track = function () {};
  pendo.clearSession = function () {
    state.visitor = null;
    state.account = null;
  };
  pendo.isReady = function () {
    return state.ready;
  };
  pendo.getVisitorId = function () {
    return state.visitor;
  };
  pendo.getAccountId = function () {
    return state.account;
  };
  pendo.flushNow = function () {};
  pendo.validateInstall = function () {
    win.console.log('Pendo stand-in (segment-pendo test kit): visitor ' + state.visitor + ', account ' + state.account);
  };
  pendo._q = [];
  for (var i = 0; i < queued.length; i++) {
    var call = queued[i];
    if (call && typeof pendo[call[0]] === 'function') {
      pendo[call[0]].apply(pendo, Array.prototype.slice.call(call, 1));
    }
  }
})(window);
