/*
 * The kanban board (templates/deals/board.html): saving drags and "Move to…" moves.
 *
 * Both ways end in move(): the card already sits in its new place in the DOM; we post its
 * id, the target stage and its new neighbours (before/after ids) from the board's own hidden
 * form, which lives outside the sortable lists, so nothing the response replaces can strand
 * the request. We handle SortableJS's "end" (fired on the list the drag STARTED from, with
 * evt.to / evt.from / evt.oldIndex), not "add"/"update" on the lists, so a cross-column drop
 * is one request with explicit data. The server answers with the affected column headers
 * and the moved card itself (its new days in stage and rotting state) out of band, and an
 * HX-Trigger "deal-moved" {id, version, status}. On any failure the card
 * goes back to where it was (the server's toast says why). A drop into a lost stage first
 * asks for an optional lost reason in the move dialog; Cancel puts the card back.
 */
(function () {
  'use strict';

  var pending = null; // {card, from, oldIndex} while a move is being confirmed or saved

  function boardEl() { return document.querySelector('[data-board]'); }
  function dialog() { return document.getElementById('move-dialog'); }
  function columnOf(node) { return node && node.closest('[data-stage-id]'); }
  function listOf(column) { return column.querySelector('[data-board-list]'); }
  function isCard(node) { return node && node.nodeType === 1 && node.hasAttribute('data-deal-id'); }

  function siblingCard(card, direction) {
    var node = direction < 0 ? card.previousElementSibling : card.nextElementSibling;
    while (node && !isCard(node)) node = direction < 0 ? node.previousElementSibling : node.nextElementSibling;
    return node;
  }

  function setSortingDisabled(disabled) {
    document.querySelectorAll('[data-board-list]').forEach(function (list) {
      if (list._crmSortable) list._crmSortable.option('disabled', disabled);
    });
  }

  // Put the card back at its old index in its old list (before "Load more", if any).
  function restore(state) {
    var card = state.card;
    var list = state.from;
    card.remove();
    var cards = Array.prototype.filter.call(list.children, isCard);
    var anchor = cards[state.oldIndex] || list.querySelector('.load-more') || null;
    list.insertBefore(card, anchor);
  }

  function send(state, stageId, lostReason) {
    var board = boardEl();
    var form = document.getElementById('board-move-form');
    if (!board || !form) return;
    var card = state.card;
    var before = siblingCard(card, -1);
    var after = siblingCard(card, 1);
    form.elements.stage_id.value = stageId;
    form.elements.before_id.value = before ? before.getAttribute('data-deal-id') : '';
    form.elements.after_id.value = after ? after.getAttribute('data-deal-id') : '';
    form.elements.version.value = card.getAttribute('data-version') || '';
    form.elements.lost_reason.value = lostReason || '';
    var query = board.getAttribute('data-board-query');
    var url = card.getAttribute('data-move-url') + (query ? '?' + query : '');
    pending = state;
    setSortingDisabled(true);
    card.setAttribute('aria-busy', 'true');
    htmx.ajax('POST', url, { source: form, swap: 'none' });
  }

  function afterRequest(evt) {
    var form = document.getElementById('board-move-form');
    if (!form || evt.detail.elt !== form) return;
    var state = pending;
    pending = null;
    setSortingDisabled(false);
    if (!state) return;
    state.card.removeAttribute('aria-busy');
    if (!evt.detail.successful) { restore(state); return; }
    // The answer replaced the card: keep the keyboard user's place on the new one.
    var fresh = document.getElementById(state.card.id);
    if (fresh && fresh !== state.card && (!document.activeElement || document.activeElement === document.body)) {
      focusCard(fresh);
    }
  }

  // HX-Trigger from a successful move: keep the card's version and status current.
  function dealMoved(evt) {
    var detail = evt.detail || {};
    var card = document.getElementById('deal-card-' + detail.id);
    if (!card) return;
    card.setAttribute('data-version', String(detail.version));
    card.setAttribute('data-status', detail.status);
    if (detail.status !== 'open') {
      card.classList.remove('overdue');
      var marker = card.querySelector('[data-overdue]');
      if (marker) marker.classList.remove('overdue');
    }
    var badge = card.querySelector('[data-status-badge]');
    if (badge) {
      badge.textContent = '';
      if (detail.status !== 'open') {
        var span = document.createElement('span');
        span.className = 'badge badge-' + detail.status;
        span.textContent = detail.status.charAt(0).toUpperCase() + detail.status.slice(1);
        badge.appendChild(span);
      }
    }
  }

  /* ------------------------------------------------------------ the dialog */

  function openDialog(state, stageId, askReasonOnly) {
    var dlg = dialog();
    if (!dlg) return;
    pending = state;
    dlg._crmState = state;
    dlg._crmReasonOnly = !!askReasonOnly;
    var select = dlg.querySelector('[data-move-stage]');
    select.value = stageId;
    select.disabled = !!askReasonOnly;
    dlg.querySelector('[data-move-deal-name]').textContent = state.card.getAttribute('aria-label') || '';
    dlg.querySelector('[data-lost-reason]').value = '';
    syncReason(dlg);
    dlg.showModal();
    (askReasonOnly ? dlg.querySelector('[data-lost-reason]') : select).focus();
  }

  function syncReason(dlg) {
    var select = dlg.querySelector('[data-move-stage]');
    var option = select.options[select.selectedIndex];
    dlg.querySelector('[data-lost-reason-field]').hidden = !(option && option.hasAttribute('data-lost'));
  }

  function closeDialog(confirmed) {
    var dlg = dialog();
    var state = dlg && dlg._crmState;
    if (!dlg || !state) return;
    dlg._crmState = null;
    var stageId = dlg.querySelector('[data-move-stage]').value;
    var reason = dlg.querySelector('[data-lost-reason]').value;
    dlg.close();
    pending = null;
    if (!confirmed) {
      if (dlg._crmReasonOnly) restore(state); // a drop into a lost stage was cancelled
      focusCard(state.card);
      return;
    }
    if (!dlg._crmReasonOnly) {
      // The keyboard way: place the card at the top of the chosen column first.
      var column = document.querySelector('.board-column[data-stage-id="' + stageId + '"]');
      if (!column || column === columnOf(state.card)) { focusCard(state.card); return; }
      var list = listOf(column);
      list.insertBefore(state.card, list.firstElementChild);
    }
    send(state, stageId, reason);
    focusCard(state.card);
  }

  function focusCard(card) {
    var button = card.querySelector('[data-move-open]');
    if (button) button.focus();
  }

  function indexIn(list, card) {
    return Array.prototype.filter.call(list.children, isCard).indexOf(card);
  }

  /* ---------------------------------------------------------------- wiring */

  document.addEventListener('end', function (evt) {
    // SortableJS's "end" bubbles from the list the drag started in.
    var card = evt.item;
    if (!isCard(card) || !evt.from || !evt.from.hasAttribute('data-board-list')) return;
    if (evt.from === evt.to && evt.oldIndex === evt.newIndex) return;
    // Cards come before "Load more", so the draggable index is the index among cards.
    var oldIndex = evt.oldDraggableIndex != null ? evt.oldDraggableIndex : evt.oldIndex;
    var state = { card: card, from: evt.from, oldIndex: oldIndex };
    var column = columnOf(evt.to);
    var stageId = column.getAttribute('data-stage-id');
    if (evt.from !== evt.to && column.hasAttribute('data-stage-lost')) {
      openDialog(state, stageId, true);
    } else {
      send(state, stageId, '');
    }
  });

  document.addEventListener('click', function (evt) {
    var open = evt.target.closest('[data-move-open]');
    if (open) {
      var card = open.closest('[data-deal-id]');
      if (!card || pending) return;
      var list = card.parentElement;
      openDialog({ card: card, from: list, oldIndex: indexIn(list, card) },
        columnOf(card).getAttribute('data-stage-id'), false);
      return;
    }
    if (evt.target.closest('[data-move-cancel]')) closeDialog(false);
  });

  document.addEventListener('submit', function (evt) {
    if (!evt.target.matches('[data-move-dialog-form]')) return;
    evt.preventDefault();
    closeDialog(true);
  });

  document.addEventListener('change', function (evt) {
    if (evt.target.matches('[data-move-stage]')) syncReason(dialog());
  });

  // Escape closes a modal dialog natively: treat it as Cancel.
  document.addEventListener('cancel', function (evt) {
    if (evt.target === dialog()) { evt.preventDefault(); closeDialog(false); }
  }, true);

  document.addEventListener('htmx:afterRequest', afterRequest);
  document.body.addEventListener('deal-moved', dealMoved);
})();

// On a phone the board scrolls one column at a time: the indicator names the column in view.
(function () {
  'use strict';
  function update(board) {
    var indicator = document.querySelector('[data-board-indicator]');
    if (!indicator) return;
    var columns = board.querySelectorAll('.board-column');
    if (!columns.length) return;
    var left = board.getBoundingClientRect().left;
    var best = 0;
    var bestDistance = Infinity;
    columns.forEach(function (column, index) {
      var distance = Math.abs(column.getBoundingClientRect().left - left);
      if (distance < bestDistance) { bestDistance = distance; best = index; }
    });
    var title = columns[best].querySelector('.board-column-header .name > span:first-child');
    var name = title ? title.textContent.trim() : 'Stage';
    var text = name + ' · ' + (best + 1) + ' of ' + columns.length +
      (best + 1 < columns.length ? ' · swipe for the next stage' : '');
    if (indicator.textContent !== text) indicator.textContent = text;
  }
  document.addEventListener('scroll', function (e) {
    var board = e.target && e.target.classList && e.target.classList.contains('board') ? e.target : null;
    if (board) update(board);
  }, true);
})();
