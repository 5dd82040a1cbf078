/*
 * crm-web client glue: htmx 2 response handling, toasts, keyboard shortcuts,
 * search-result keyboard navigation and SortableJS lists.
 *
 * Plain ES2017, no modules. Load with `defer` after htmx-2.0.11.min.js (and
 * sortable-1.15.7.min.js on pages with a board). Public API: window.crm.
 */
(function () {
  'use strict';

  var GENERIC_ERROR = 'Something went wrong. Please try again.';
  var SESSION_EXPIRED = 'Your session has expired. Please sign in again.';
  var NETWORK_ERROR = 'Network error: your change was not saved. Check your connection and try again.';
  var DEFAULT_TIMEOUT = 5000;

  /* ------------------------------------------------------------------ htmx */

  // Deferred scripts run before DOMContentLoaded, which is when htmx reads its
  // config, so these settings apply to the first page load too. A
  // <meta name="htmx-config"> would be merged later and override them.
  htmx.config.responseHandling = [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    // Form validation errors: the server re-renders the form; swap it in place.
    { code: '422', swap: true },
    // Conflict: a stale edit form comes back with the typed values and who changed the record;
    // swap it in place like 422 (other 409s carry HX-Retarget: #toasts). Still an error, so a
    // refused board move puts its card back.
    { code: '409', swap: true, error: true },
    // Other errors are retargeted by the server (HX-Retarget: #toasts) to a
    // toast; htmx:beforeSwap below stops those that are not.
    { code: '[45]..', swap: true, error: true },
    { code: '...', swap: false }
  ];
  // The server only sends a fragment when HX-Request is set and the request is
  // not a history restore; this keeps history-cache misses full pages.
  htmx.config.historyRestoreAsHxRequest = false;
  // app.css has the .htmx-indicator rules; htmx's injected inline <style>
  // would also need a CSP nonce.
  htmx.config.includeIndicatorStyles = false;
  // No copies of pages in the tab: htmx would keep the last pages' HTML in
  // sessionStorage for its back button, where it outlives a sign-out. Back and
  // forward ask the server instead (a full page: see historyRestoreAsHxRequest),
  // and what an older version of this file stored is dropped on every load.
  htmx.config.historyCacheSize = 0;
  try {
    sessionStorage.removeItem('htmx-history-cache');
  } catch (e) { /* storage disabled: nothing was stored either */ }

  document.addEventListener('htmx:beforeSwap', function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status < 400 || xhr.status === 422 || xhr.status === 409) return;
    if (xhr.getResponseHeader('HX-Retarget')) return; // the server chose where it goes
    // An error page (or proxy error) would otherwise replace part of the page.
    // A 401 normally carries HX-Redirect, which htmx follows before this event.
    evt.detail.shouldSwap = false;
    evt.detail.isError = true;
    toast(xhr.status === 401 ? SESSION_EXPIRED : GENERIC_ERROR, 'error');
  });

  function onNetworkError() { toast(NETWORK_ERROR, 'error'); }
  document.addEventListener('htmx:sendError', onNetworkError);
  document.addEventListener('htmx:timeout', onNetworkError);

  /* ---------------------------------------------------------------- toasts */

  function toastArea() {
    var area = document.getElementById('toasts');
    if (!area) {
      // HX-Retarget: #toasts must resolve, or htmx throws a targetError.
      area = document.createElement('div');
      area.id = 'toasts';
      area.setAttribute('aria-live', 'polite');
      document.body.appendChild(area);
    }
    return area;
  }

  function dismiss(el) {
    if (!el || el.classList.contains('toast-leaving')) return;
    if (el._crmToast) el._crmToast.stop();
    el.classList.add('toast-leaving');
    var reduce = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    setTimeout(function () { el.remove(); }, reduce ? 0 : 160);
  }

  // Auto-dismiss after data-timeout ms (default 5000, "0" = stays until
  // closed). The timer pauses while the toast is hovered or holds focus, and
  // while a request started inside it (an Undo) is in flight.
  function wireToast(el) {
    if (el._crmToast) return;
    var attr = el.getAttribute('data-timeout');
    var timeout = attr === null || attr === '' || isNaN(attr) ? DEFAULT_TIMEOUT : Number(attr);
    var remaining = timeout;
    var startedAt = 0;
    var timer = null;
    var holds = { hover: false, focus: false, request: false };

    function held() { return holds.hover || holds.focus || holds.request; }
    function stop() {
      if (!timer) return;
      clearTimeout(timer);
      timer = null;
      remaining -= Date.now() - startedAt;
    }
    function start() {
      if (timer || timeout <= 0 || held() || !el.isConnected) return;
      startedAt = Date.now();
      // Leave a moment to read it after the pointer leaves.
      timer = setTimeout(function () { dismiss(el); }, Math.max(remaining, 1500));
    }
    function hold(key, on) { holds[key] = on; if (on) stop(); else start(); }

    el._crmToast = { stop: stop };
    el.addEventListener('mouseenter', function () { hold('hover', true); });
    el.addEventListener('mouseleave', function () { hold('hover', false); });
    el.addEventListener('focusin', function () { hold('focus', true); });
    el.addEventListener('focusout', function (e) {
      if (!el.contains(e.relatedTarget)) hold('focus', false);
    });
    el.addEventListener('htmx:beforeRequest', function () { hold('request', true); });
    el.addEventListener('htmx:afterRequest', function (e) {
      // Undo done: the server answers with the restored row and its own toast.
      if (e.detail && e.detail.successful) dismiss(el);
      else hold('request', false);
    });
    el.addEventListener('click', function (e) {
      if (e.target.closest('.toast-close')) dismiss(el);
    });
    // Markup rendered by Jinja into the page may omit the role.
    if (!el.hasAttribute('role')) el.setAttribute('role', el.classList.contains('toast-error') ? 'alert' : 'status');
    if (!el.querySelector('.toast-close')) el.appendChild(closeButton());
    start();
  }

  function closeButton() {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'toast-close';
    b.setAttribute('aria-label', 'Dismiss');
    b.textContent = '\u00d7';
    return b;
  }

  /**
   * Show a client-side toast. kind: 'success' | 'error' | 'info' (default).
   * options.timeout: ms before auto-dismiss (0 = sticky). Returns the element.
   */
  function toast(message, kind, options) {
    kind = kind === 'success' || kind === 'error' ? kind : 'info';
    var el = document.createElement('div');
    el.className = 'toast toast-' + kind;
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    var timeout = options && options.timeout != null ? options.timeout : DEFAULT_TIMEOUT;
    el.setAttribute('data-timeout', String(timeout));
    var text = document.createElement('span');
    text.className = 'toast-message';
    text.textContent = String(message); // never HTML: messages may echo user input
    el.appendChild(text);
    el.appendChild(closeButton());
    toastArea().appendChild(el);
    wireToast(el);
    return el;
  }

  function wireToasts(root) {
    if (!root || root.nodeType !== 1) return;
    if (root.matches('.toast')) wireToast(root);
    root.querySelectorAll('.toast').forEach(wireToast);
  }

  /* ------------------------------------------------------------- keyboard */

  function isTyping(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
    if (tag !== 'INPUT') return false;
    // Checkboxes, radios and buttons take no text.
    return !/^(checkbox|radio|button|submit|reset|file|image|range|color)$/i.test(el.type);
  }

  function searchItems() {
    var box = document.querySelector('.global-search .search-results');
    return box ? Array.prototype.slice.call(box.querySelectorAll('.search-item')) : [];
  }

  function moveActive(step) {
    var items = searchItems();
    if (!items.length) return;
    var current = items.findIndex(function (i) { return i.classList.contains('active'); });
    var next = current === -1 ? (step > 0 ? 0 : items.length - 1)
      : (current + step + items.length) % items.length;
    items.forEach(function (i, n) {
      i.classList.toggle('active', n === next);
      i.setAttribute('aria-selected', n === next ? 'true' : 'false');
    });
    items[next].scrollIntoView({ block: 'nearest' });
  }

  document.addEventListener('keydown', function (e) {
    var search = document.getElementById('global-search-input');
    if (!search || e.defaultPrevented || e.isComposing) return;
    var target = e.target;
    var isK = (e.key === 'k' || e.key === 'K') && (e.ctrlKey || e.metaKey) && !e.altKey;

    if (target === search) {
      if (isK) { e.preventDefault(); search.select(); return; }
      if (e.key === 'Escape') {
        search.blur();
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        moveActive(e.key === 'ArrowDown' ? 1 : -1);
      } else if (e.key === 'Enter') {
        var active = searchItems().filter(function (i) { return i.classList.contains('active'); })[0];
        if (active) {
          e.preventDefault();
          var link = active.matches('a[href]') ? active : active.querySelector('a[href]');
          (link || active).click();
        }
      }
      return;
    }

    if (isTyping(target)) return;
    var isSlash = e.key === '/' && !e.ctrlKey && !e.metaKey && !e.altKey;
    if (isK || isSlash) {
      e.preventDefault(); // keep "/" out of the box and Ctrl-K from the browser's search bar
      search.focus();
      search.select();
    }
  });

  /* ------------------------------------------------------------- sortable */

  // Elements with [data-sortable] become SortableJS lists; lists sharing
  // data-sortable-group (default "board") exchange items. Sortable fires DOM
  // events on the lists, which htmx can use as triggers:
  //   "update" on the list after a reorder inside it,
  //   "add"    on the list that received an item from another list,
  //   "end"    on the list the drag started from (every drop).
  // A board column that posts its new order (one hidden input per card) uses
  // hx-trigger="add, update". Items matching .htmx-indicator or .load-more
  // stay put. A list is disabled while its request runs, so a second drag
  // cannot race the first.
  function wireSortable(el) {
    if (el._crmSortable || typeof Sortable === 'undefined') return;
    el._crmSortable = Sortable.create(el, {
      group: el.getAttribute('data-sortable-group') || 'board',
      animation: 150,
      filter: '.htmx-indicator, .load-more, [data-locked]', // a locked card: its viewer may not move it
      preventOnFilter: false, // let the "Load more" button still be clicked
      ghostClass: 'sortable-ghost',
      chosenClass: 'sortable-chosen',
      dragClass: 'sortable-drag',
      onMove: function (evt) {
        return !evt.related.matches('.htmx-indicator, .load-more');
      }
    });
    // Optional: data-sortable-handle=".drag-handle" to drag by a handle only.
    if (el.hasAttribute('data-sortable-handle')) {
      el._crmSortable.option('handle', el.getAttribute('data-sortable-handle'));
    }
    el.addEventListener('htmx:beforeRequest', function () { el._crmSortable.option('disabled', true); });
    el.addEventListener('htmx:afterRequest', function () { el._crmSortable.option('disabled', false); });
  }

  function wireSortables(root) {
    if (!root || root.nodeType !== 1) return;
    if (root.matches('[data-sortable]')) wireSortable(root);
    root.querySelectorAll('[data-sortable]').forEach(wireSortable);
  }

  /* ----------------------------------------------------------------- copy */

  // <button data-copy="#field">: copies the field's value (an invitation link) and says so.
  document.addEventListener('click', function (e) {
    var button = e.target.closest ? e.target.closest('[data-copy]') : null;
    if (!button) return;
    var field = document.querySelector(button.getAttribute('data-copy'));
    if (!field) return;
    field.select();
    function done() { toast('Copied to the clipboard.', 'success', { timeout: 2500 }); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand('copy'); done(); });
    } else {
      document.execCommand('copy');
      done();
    }
  });

  /* ------------------------------------------------------------ uploads */

  // A file over the form's limit is refused before it is sent (the server refuses it too).
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var limit = form && form.dataset && Number(form.dataset.maxBytes);
    if (!limit) return;
    var input = form.querySelector('input[type=file]');
    var file = input && input.files && input.files[0];
    if (file && file.size > limit) {
      event.preventDefault();
      toast(form.dataset.tooLarge, 'error');
    }
  });

  /* ----------------------------------------------------------------- init */

  // htmx.onLoad runs for the initial body and for all new content, including
  // out-of-band swaps into #toasts.
  htmx.onLoad(function (root) {
    wireToasts(root);
    wireSortables(root);
  });

  window.crm = window.crm || {};
  window.crm.toast = toast;
  window.crm.dismissToast = dismiss;
})();

/* ---------------------------------------------------------- page polish (issue 18) */
(function () {
  'use strict';

  // Inline edits on the contact page: Esc cancels; opening an editor closes any other one.
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape' || !e.target.closest) return;
    var form = e.target.closest('form.inline-edit');
    if (!form) return;
    var cancel = form.querySelector('[data-inline-cancel]');
    if (!cancel) return;
    e.preventDefault();
    // An editor swapped in a moment ago may not be settled yet: wire its Cancel first (idempotent).
    if (window.htmx) htmx.process(cancel);
    cancel.click();
  });
  document.addEventListener('htmx:beforeRequest', function (e) {
    var opener = e.detail.elt;
    if (!opener || !opener.matches || !opener.matches('button.inline-edit')) return;
    document.querySelectorAll('form.inline-edit [data-inline-cancel]').forEach(function (cancel) { cancel.click(); });
  });

  // Cancel on a form opened inside a page (New activity on a record's timeline or the activities
  // page) closes it instead of leaving the page.
  document.addEventListener('click', function (e) {
    var cancel = e.target.closest ? e.target.closest('[data-form-cancel]') : null;
    if (!cancel) return;
    var slot = cancel.closest('[id$="-form-slot"]');
    if (!slot) return;
    e.preventDefault();
    slot.textContent = '';
  });

  // Compact list rows, remembered in this browser.
  var KEY = 'crm-density';
  function applyDensity() {
    var compact = false;
    try { compact = window.localStorage.getItem(KEY) === 'compact'; } catch (err) { /* storage off */ }
    document.body.classList.toggle('density-compact', compact);
    document.querySelectorAll('[data-density-toggle]').forEach(function (b) {
      b.setAttribute('aria-pressed', compact ? 'true' : 'false');
    });
  }
  document.addEventListener('click', function (e) {
    var toggle = e.target.closest ? e.target.closest('[data-density-toggle]') : null;
    if (!toggle) return;
    var compact = !document.body.classList.contains('density-compact');
    try { window.localStorage.setItem(KEY, compact ? 'compact' : 'comfortable'); } catch (err) { /* storage off */ }
    applyDensity();
  });
  document.addEventListener('DOMContentLoaded', applyDensity);

  // The "Filter" button's count follows the conditions applied.
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!form.matches || !form.matches('#filter-builder')) return;
    var summary = document.querySelector('#filter-disclosure [data-filter-summary]');
    if (!summary) return;
    var count = Array.prototype.filter.call(form.querySelectorAll('[data-filter-rows] [data-field]'), function (s) {
      return s.value;
    }).length;
    var badge = summary.querySelector('[data-filter-count]');
    if (!count) { if (badge) badge.remove(); return; }
    if (!badge) {
      badge = document.createElement('span');
      badge.className = 'filter-count';
      badge.setAttribute('data-filter-count', '');
      summary.appendChild(badge);
    }
    badge.textContent = String(count);
    badge.setAttribute('aria-label', count + ' active condition' + (count === 1 ? '' : 's'));
  }, true);
})();
