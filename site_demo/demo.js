// The demo page's own logic: turns the forms into Segment calls and shows what Pendo received.
(function () {
  'use strict';
  var nextSeq = 0;
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
        // Clicks, focus and the like: the agent's own capture, not something this script sent.
        return [event.type, '', null];
    }
  }

  function show(entry) {
    if (entry.source !== 'pendo' || entry.endpoint !== 'ptm.gif') {
      return;
    }
    entry.payloads.forEach(function (payload) {
      (Array.isArray(payload) ? payload : [payload]).forEach(function (event) {
        var parts = describe(event);
        var item = document.createElement('li');
        item.className = 'pendo-event pendo-' + event.type;
        item.setAttribute('data-type', event.type);
        var title = document.createElement('strong');
        title.textContent = parts[0] + (parts[1] ? ': ' + parts[1] : '');
        var who = document.createElement('span');
        who.className = 'who';
        who.textContent = 'visitor ' + event.visitor_id + (event.account_id ? ' · account ' + event.account_id : '');
        item.appendChild(title);
        item.appendChild(who);
        if (parts[2]) {
          var detail = document.createElement('pre');
          detail.textContent = JSON.stringify(parts[2], null, 2);
          item.appendChild(detail);
        }
        log.insertBefore(item, log.firstChild);
      });
    });
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
    document.getElementById('script-tag').textContent = script
      ? '<script src="/segment-pendo.min.js" integrity="' + script.sri + '" crossorigin="anonymous"></script>'
      : '';
    var error = document.getElementById('build-error');
    error.hidden = !state.buildError;
    error.textContent = state.buildError || '';
  }

  function poll() {
    fetch('/demo/state?since=' + nextSeq)
      .then(function (response) { return response.json(); })
      .then(function (state) {
        showManifest(state);
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
