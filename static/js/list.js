/*
 * List pages (templates/components/list.html): row selection and the bulk action bar.
 * A header [data-select-all] checks every [data-select-row] of its table; the bar
 * [data-bulk-bar] shows while anything is selected and counts it. The table block is
 * re-rendered by htmx after every change, so state is read from the DOM each time.
 */
(function () {
  'use strict';

  function scopeOf(node) {
    return node.closest('[data-list-block]') || document;
  }

  function refresh(scope) {
    var rows = scope.querySelectorAll('[data-select-row]');
    var checked = scope.querySelectorAll('[data-select-row]:checked');
    var all = scope.querySelector('[data-select-all]');
    if (all) {
      all.checked = rows.length > 0 && checked.length === rows.length;
      all.indeterminate = checked.length > 0 && checked.length < rows.length;
    }
    var bar = scope.querySelector('[data-bulk-bar]');
    if (bar) {
      bar.hidden = checked.length === 0;
      var count = bar.querySelector('[data-selected-count]');
      if (count) count.textContent = String(checked.length);
    }
  }

  document.addEventListener('change', function (e) {
    var target = e.target;
    if (target.matches('[data-select-all]')) {
      var scope = scopeOf(target);
      scope.querySelectorAll('[data-select-row]').forEach(function (box) { box.checked = target.checked; });
      refresh(scope);
    } else if (target.matches('[data-select-row]')) {
      refresh(scopeOf(target));
    }
  });

  document.addEventListener('click', function (e) {
    var button = e.target.closest('[data-clear-selection]');
    if (!button) return;
    var scope = scopeOf(button);
    scope.querySelectorAll('[data-select-row]:checked').forEach(function (box) { box.checked = false; });
    refresh(scope);
  });

  htmx.onLoad(function (root) {
    if (!root || root.nodeType !== 1) return;
    var blocks = root.matches('[data-list-block]') ? [root] : root.querySelectorAll('[data-list-block]');
    Array.prototype.forEach.call(blocks, refresh);
  });
})();

/* The column chooser (templates/components/columns.html): drag a column's row to reorder; the form posts
   the checked columns in the order they stand. Up/down buttons do the same without a mouse. */
(function () {
  var dragged = null;
  document.addEventListener('dragstart', function (e) {
    var item = e.target.closest && e.target.closest('[data-column]');
    if (!item) return;
    dragged = item;
    e.dataTransfer.effectAllowed = 'move';
    e.dataTransfer.setData('text/plain', item.getAttribute('data-column'));
  });
  document.addEventListener('dragover', function (e) {
    var over = e.target.closest && e.target.closest('[data-column]');
    if (!dragged || !over || over === dragged || over.parentNode !== dragged.parentNode) return;
    e.preventDefault();
    var box = over.getBoundingClientRect();
    over.parentNode.insertBefore(dragged, e.clientY < box.top + box.height / 2 ? over : over.nextSibling);
  });
  document.addEventListener('dragend', function () { dragged = null; });
  document.addEventListener('click', function (e) {
    var button = e.target.closest && e.target.closest('[data-column-move]');
    if (!button) return;
    var item = button.closest('[data-column]');
    if (button.getAttribute('data-column-move') === 'up' && item.previousElementSibling) {
      item.parentNode.insertBefore(item, item.previousElementSibling);
    } else if (button.getAttribute('data-column-move') === 'down' && item.nextElementSibling) {
      item.parentNode.insertBefore(item.nextElementSibling, item);
    }
  });
})();
