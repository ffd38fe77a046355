// The demo page's own logic: turns the forms into Segment calls and shows what Pendo received.
(function () {
  'use strict';
  // Only what reached the server after this page was served: each page load keeps its own log.
  var nextSeq = Number(document.body.getAttribute('data-log-start')) || 0;
  var debugSeen = 0;
  var loadedScriptSri = null;
  var agentOwnEvents = 0;
  var log = document.getElementById('pendo-log');

  function parseJson(text) {
    try {
      return text.trim() ? JSON.parse(text) : {};
    } catch (error) {
      window.alert('Not valid JSON: ' + error.message);
      return null;
    }
  }

  function flushPendo() {
    if (window.pendo && typeof pendo.isReady === 'function' && pendo.isReady()) {
      pendo.flushNow(true);
    }
  }

  document.querySelectorAll('form[data-call]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var call = form.getAttribute('data-call');
      var id = form.elements.id ? form.elements.id.value : null;
      var data = form.elements.json ? parseJson(form.elements.json.value) : {};
      if (data === null) {
        return;
      }
      if (call === 'reset') {
        analytics.reset();
      } else {
        analytics[call](id, data);
      }
      window.setTimeout(flushPendo, 300);
    });
  });

  // Pendo guides (when [guide_events] is on): show one; what the visitor does in it goes to Segment.
  document.querySelectorAll('button[data-guide]').forEach(function (button) {
    button.addEventListener('click', function () {
      if (window.pendo && typeof pendo.showGuideById === 'function') {
        pendo.showGuideById(button.getAttribute('data-guide'));
      }
    });
  });

  // A guide event the script sent to Segment: its track calls carry this integrations flag.
  function showGuideEvent(entry) {
    var event = entry.event;
    if (event && event.type === 'track' && event.integrations &&
        event.integrations['Pendo Web (segment-pendo)'] === false) {
      addItem('segment-guide-event', 'Segment got track: ' + event.event, 'from a Pendo guide event', event.properties);
    }
  }

  function describe(event) {
    switch (event.type) {
      case 'track':
        return ['track', event.track_event_name, event.props];
      case 'meta':
        return ['metadata', '', event.props];
      case 'identify':
        return ['identify', '', { visitor: event.visitor_id, account: event.account_id }];
      case 'load':
        return ['page load', event.url, null];
      default:
        return [event.type, '', null];
    }
  }

  function show(entry) {
    if (entry.source === 'segment') {
      showGuideEvent(entry);
    }
    if (entry.source === 'pendo' && entry.endpoint === 'segment-pendo-kit') {
      var call = entry.payloads[0] || {};
      addItem('pendo-event pendo-call', 'pendo.' + call.method,
        'called on the stand-in agent (the real agent would send it to Pendo)', call.args);
      return;
    }
    if (entry.source !== 'pendo' || entry.endpoint !== 'ptm.gif') {
      return;
    }
    entry.payloads.forEach(function (payload) {
      (Array.isArray(payload) ? payload : [payload]).forEach(function (event) {
        // Clicks, focus and the like are the agent's own capture, not something this script sent.
        if (['track', 'meta', 'identify', 'load'].indexOf(event.type) === -1) {
          agentOwnEvents += 1;
          document.getElementById('agent-own').textContent = String(agentOwnEvents);
          return;
        }
        var parts = describe(event);
        addItem('pendo-event pendo-' + event.type, parts[0] + (parts[1] ? ': ' + parts[1] : ''),
          'sent: visitor ' + event.visitor_id + (event.account_id ? ' · account ' + event.account_id : ''), parts[2]);
      });
    });
  }

  function addItem(className, title, subtitle, detail) {
    // Page load's own initialize is not a call the visitor made.
    if (title !== 'pendo.initialize' && title.indexOf('page load') !== 0 && title !== 'metadata') {
      document.getElementById('waiting').hidden = true;
    }
    var item = document.createElement('li');
    item.className = className;
    var heading = document.createElement('strong');
    heading.textContent = title;
    item.appendChild(heading);
    if (subtitle) {
      var line = document.createElement('span');
      line.className = 'who';
      line.textContent = subtitle;
      item.appendChild(line);
    }
    if (detail !== null && detail !== undefined) {
      var pre = document.createElement('pre');
      pre.textContent = JSON.stringify(detail, null, 2);
      item.appendChild(pre);
    }
    log.insertBefore(item, log.firstChild);
  }

  // The page runs a debug build: each subscription that matched, its mapped fields and the Pendo call.
  function showDecisions() {
    var debugLog = window.segmentPendoDebug ? window.segmentPendoDebug.log : [];
    for (; debugSeen < debugLog.length; debugSeen += 1) {
      var entry = debugLog[debugSeen];
      if (entry.kind === 'subscription') {
        var call = entry.detail.call;
        addItem('pendo-decision', 'subscription "' + entry.detail.name + '" matched',
          call ? 'pendo.' + call[0] + '(…)' : 'nothing to send', { mapped: entry.detail.mapped, call: call });
      } else if (entry.kind === 'pendo.initialize') {
        addItem('pendo-decision', 'pendo.initialize', 'from what analytics.js remembers', entry.detail[0]);
      } else if (entry.kind === 'pendo will not show') {
        addItem('pendo-warning', 'Pendo will not show all of it', 'subscription "' + entry.detail.name + '"',
          entry.detail.warnings);
      } else if (entry.kind === 'pendo.startSendingEvents' || entry.kind === 'pendo.stopSendingEvents' ||
          entry.kind.indexOf('held back') === 0) {
        addItem('pendo-decision', entry.kind, '', entry.detail);
      }
    }
  }

  function showManifest(state) {
    var body = document.querySelector('#manifest tbody');
    body.textContent = '';
    var files = (state.manifest && state.manifest.files) || {};
    Object.keys(files).forEach(function (name) {
      var row = document.createElement('tr');
      [name, files[name].bytes, files[name].gzip_bytes, files[name].sri].forEach(function (value) {
        var cell = document.createElement('td');
        cell.textContent = String(value);
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    var script = files['segment-pendo.min.js'];
    // A rebuilt script (config or template changed) only takes effect in a fresh page.
    if (script && loadedScriptSri && script.sri !== loadedScriptSri) {
      window.location.reload();
    }
    loadedScriptSri = script ? script.sri : loadedScriptSri;
    document.getElementById('script-tag').textContent = state.tag || '';
    var error = document.getElementById('build-error');
    error.hidden = !state.buildError;
    error.textContent = state.buildError || '';
    var missing = document.getElementById('agent-missing');
    missing.hidden = !state.agentMissing;
    missing.textContent = state.agentMissing ? 'Pendo\'s agent is not installed where serve runs, so this page ' +
      'uses segment-pendo\'s recording stand-in: the Pendo column shows each call the script made on it. To see ' +
      'what the real agent sends, run npm install @pendo/agent@' + state.agentVersion + ' in that folder.' : '';
  }

  function showConfig(state) {
    document.getElementById('config-path').textContent = state.config;
    document.getElementById('config-region').textContent = state.region || '';
    document.getElementById('config-agent').textContent = state.agentUrl || '';
    var list = document.getElementById('subscriptions');
    list.textContent = '';
    (state.subscriptions || []).forEach(function (item) {
      var entry = document.createElement('li');
      entry.className = item.enabled ? 'subscription' : 'subscription off';
      entry.textContent = (item.enabled ? '' : '(off) ') + item.name + ': ' + item.action + ' when ' + item.when;
      list.appendChild(entry);
    });
    var guideEvents = document.getElementById('guide-events-state');
    guideEvents.textContent = state.guideEvents
      ? 'On: ' + Object.keys(state.guideEvents).map(function (type) {
        return type + ' → "' + state.guideEvents[type] + '"';
      }).join(', ') + '.'
      : 'Off in this config: the guides show, and Segment gets nothing from them. Add [guide_events] ' +
        'enabled = true to the config (the page rebuilds), or start the demo with bash site_demo/run.sh --guide-events.';
    if (state.webhook) {
      var hook = document.createElement('li');
      hook.className = 'subscription webhook';
      hook.textContent = '[webhook] ' + state.webhook.name + ': POST ' + state.webhook.url + ' when ' +
        state.webhook.when;
      list.appendChild(hook);
    }
  }

  function poll() {
    fetch('/demo/state?since=' + nextSeq)
      .then(function (response) { return response.json(); })
      .then(function (state) {
        showManifest(state);
        showConfig(state);
        showDecisions();
        state.log.forEach(function (entry) {
          nextSeq = Math.max(nextSeq, entry.seq + 1);
          show(entry);
        });
        if (window.pendo && typeof pendo.getVisitorId === 'function') {
          document.getElementById('visitor-id').textContent = pendo.getVisitorId() || '–';
          document.getElementById('account-id').textContent = pendo.getAccountId() || '–';
        }
      })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 700); });
  }
  poll();
})();
