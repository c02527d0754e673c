// uec-provisioning web UI: live node updates over server-sent events; everything else is plain forms.
/* global document, window */
'use strict';
(function () {
  var base = (document.querySelector('meta[name="uecp-base"]') || {}).content;
  if (!base || !document.querySelector('meta[name="uecp-csrf"]')) return;
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      if (!window.confirm(form.getAttribute('data-confirm'))) e.preventDefault();
    });
  });
  var live = document.getElementById('live');
  var stages = ['netboot', 'preseed', 'installing', 'installed', 'deployed'];
  var unseen = 0;
  function update(n) {
    var rows = document.querySelectorAll('[data-node="' + n.systemId + '"]');
    if (rows.length === 0 && document.querySelector('[data-live="nodes"]') && !n.removed) {
      unseen++;
      var note = document.getElementById('new-nodes');
      if (note) note.textContent = unseen + ' node(s) added or enlisted since this page loaded: reload to see them.';
    }
    rows.forEach(function (row) {
      if (n.removed) { row.remove(); return; }
      row.querySelectorAll('[data-field="status"]').forEach(function (el) {
        el.textContent = n.status;
        el.className = 'status status-' + n.status;
      });
      row.querySelectorAll('[data-field="last"]').forEach(function (el) { el.textContent = n.lastEventAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'); });
      row.querySelectorAll('[data-field="lastEvent"]').forEach(function (el) { el.textContent = n.lastEvent; });
      row.querySelectorAll('[data-field="reason"]').forEach(function (el) { el.textContent = n.statusReason; });
      row.querySelectorAll('[data-field="stages"]').forEach(function (ol) {
        var reached = n.stage === 'failed' ? -1 : stages.indexOf(n.stage);
        ol.textContent = '';
        stages.forEach(function (s, i) {
          var li = document.createElement('li');
          li.textContent = s;
          if (i <= reached) li.className = 'done';
          ol.appendChild(li);
        });
        if (n.stage === 'failed') {
          var f = document.createElement('li');
          f.className = 'failed';
          f.textContent = 'failed: ' + n.statusReason;
          ol.appendChild(f);
        }
      });
    });
    if (live && !n.removed) {
      live.hidden = false;
      live.textContent = n.hostname + ': ' + n.status + (n.lastEvent ? ' (' + n.lastEvent + ')' : '');
    }
  }
  if (window.EventSource) {
    var source = new window.EventSource(base + '/api/events');
    source.addEventListener('node', function (e) {
      try { update(JSON.parse(e.data)); } catch { /* ignore a malformed event */ }
    });
  }
})();
