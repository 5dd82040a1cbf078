/*
 * Live pages and the bell (crm_web/views/live.py, views/notifications.py, docs/design.md).
 *
 * A live page (#live-poll) asks whether its stamp is still current; the answer is 204 when nothing
 * changed. When the server offers a stream (<meta name="crm-live-stream">, crm_web/live_stream.py)
 * the page asks only when the stream says its domain changed (and every STREAM_SAFETY_MS in case an
 * event was lost); without one, or while the stream is down, it asks every POLL_MS. Otherwise:
 * - the board gets its headers, cards and totals out of band; while a card is being dragged or a
 *   move is being saved the answer is dropped and asked again after the drop (nothing is yanked);
 * - a list shows a quiet "N new changes · Refresh" bar;
 * - a detail page shows "Changed by X a moment ago" and refreshes its record, unless its viewer is
 *   typing in it.
 * The bell asks the same way (every BELL_MS, or when told and when its next reminder falls due).
 * A hidden tab does not ask; it asks at once when shown.
 */
(function () {
  'use strict';

  var POLL_MS = 2000;
  var BELL_MS = 5000;
  var STREAM_SAFETY_MS = 60000;
  var STREAM_RETRY_MS = 30000;
  var STREAM_DOMAINS = ['deals', 'contacts', 'companies', 'leads', 'activities'];
  var busy = false;
  var bellBusy = false;
  var pending = false;      // a change to ask about once the page can (not dragging, shown, not asking)
  var bellPending = false;
  var stream = null;
  var streaming = false;    // the stream is open: ask when told
  var timers = [];
  var bellDue = null;

  function poller() { return document.getElementById('live-poll'); }

  function dragging() {
    return !!document.querySelector(
      '.sortable-chosen, .sortable-ghost, .sortable-drag, #move-dialog[open], ' +
      '#board-move-form.htmx-request, [data-board] .htmx-request'
    );
  }

  function editing() {
    var active = document.activeElement;
    return !!(active && active.closest('#main') && active.matches('input, textarea, select, [contenteditable]'));
  }

  function ask(url, extra) {
    return fetch(url + (url.indexOf('?') < 0 ? '?' : '&') + extra, {
      credentials: 'same-origin',
      headers: { 'HX-Request': 'true' },
      cache: 'no-store'
    });
  }

  function signedOut(response) {
    if (response.status !== 401) return false;
    var to = response.headers.get('HX-Redirect');
    if (to) window.location.href = to;
    return true;
  }

  function refreshRecord(bar) {
    fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html || editing()) return;
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('main');
        var main = document.getElementById('main');
        if (!fresh || !main) return;
        main.innerHTML = fresh.innerHTML;
        if (window.htmx) htmx.process(main);
        var slot = document.getElementById('live-bar');
        if (slot) slot.innerHTML = bar;
      });
  }

  function poll() {
    var el = poller();
    if (!el) return;
    if (busy || document.hidden || dragging()) { pending = true; return; }
    pending = false;
    busy = true;
    var url = el.getAttribute('data-live-url');
    var extra = 's=' + encodeURIComponent(el.getAttribute('data-live-stamp') || '') +
      '&n=' + encodeURIComponent(el.getAttribute('data-live-count') || '0');
    var board = document.querySelector('[data-board]');
    if (board) extra += '&board=1&' + (board.getAttribute('data-board-query') || '');
    ask(url, extra).then(function (response) {
      if (signedOut(response)) return;
      var stamp = response.headers.get('X-Live-Stamp');
      var count = response.headers.get('X-Live-Count');
      return response.text().then(function (html) {
        if (response.status === 200 && html) {
          if (board) {
            if (dragging()) { pending = true; return; } // asked again after the drop
            var sink = document.getElementById('live-sink');
            htmx.swap(sink, html, { swapStyle: 'innerHTML' });
            sink.innerHTML = '';
          } else if (el.hasAttribute('data-live-record')) {
            if (editing()) {
              document.getElementById('live-bar').innerHTML = html;
            } else {
              refreshRecord(html);
            }
          } else {
            document.getElementById('live-bar').innerHTML = html;
          }
        }
        if (stamp) el.setAttribute('data-live-stamp', stamp);
        if (count) el.setAttribute('data-live-count', count);
      });
    }).catch(function () { /* offline: ask again later */ })
      .then(function () { busy = false; });
  }

  function pollBell() {
    var bell = document.getElementById('bell');
    if (!bell) return;
    if (bellBusy || document.hidden) { bellPending = true; return; }
    bellPending = false;
    bellBusy = true;
    ask(bell.getAttribute('data-bell-url'), 's=' + encodeURIComponent(bell.getAttribute('data-bell-stamp') || ''))
      .then(function (response) {
        if (signedOut(response)) return;
        if (response.status !== 200) return;
        return response.text().then(function (html) {
          var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('bell');
          var current = document.getElementById('bell');
          if (fresh && current) current.replaceWith(fresh);
          if (fresh) bellAtNextReminder(fresh.getAttribute('data-bell-next'));
        });
      }).catch(function () { /* offline */ })
      .then(function () { bellBusy = false; });
  }

  function bellAtNextReminder(next) {
    // The bell derives reminders when it asks: with a stream it asks when the next one falls due.
    if (bellDue) clearTimeout(bellDue);
    var wait = next ? parseInt(next, 10) * 1000 - Date.now() + 500 : NaN;
    if (wait > 0 && wait < 86400000) bellDue = setTimeout(pollBell, wait);
  }

  function schedule() {
    timers.forEach(clearInterval);
    timers = [
      setInterval(poll, streaming ? STREAM_SAFETY_MS : POLL_MS),
      setInterval(pollBell, streaming ? STREAM_SAFETY_MS : BELL_MS)
    ];
  }

  function openStream() {
    var meta = document.querySelector('meta[name="crm-live-stream"]');
    if (!meta || !window.EventSource || stream) return;
    stream = new EventSource(meta.getAttribute('content'));
    stream.onopen = function () {
      streaming = true;
      schedule();
      poll(); // whatever changed before the stream opened
      pollBell();
    };
    stream.onerror = function () {
      if (streaming) { streaming = false; schedule(); } // poll while it reconnects
      if (stream && stream.readyState === EventSource.CLOSED) { // refused (signed out, Redis away): later
        stream = null;
        setTimeout(openStream, STREAM_RETRY_MS);
      }
    };
    STREAM_DOMAINS.forEach(function (domain) {
      stream.addEventListener(domain, function () {
        var el = poller();
        if (el && el.getAttribute('data-live-domain') === domain) poll();
        if (domain === 'activities') pollBell(); // reminders follow the activities
      });
    });
    stream.addEventListener('bell', pollBell);
  }

  document.addEventListener('click', function (evt) {
    if (evt.target.closest('[data-live-refresh]')) {
      evt.preventDefault();
      window.location.reload();
    }
  });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) { poll(); pollBell(); }
  });
  document.addEventListener('DOMContentLoaded', function () {
    var el = poller();
    if (el && el.hasAttribute('data-live-interval')) POLL_MS = parseInt(el.getAttribute('data-live-interval'), 10);
    pollBell();
    schedule();
    // A change told while the page could not ask (a drag, a hidden tab, a request in flight): ask after.
    setInterval(function () {
      if (pending) poll();
      if (bellPending) pollBell();
    }, 500);
    openStream();
  });
})();
