/*
 * Trash page: the header checkbox selects or clears every row of the bulk form
 * (rows point at it with form="..."; the table is not inside the form, so a
 * row's own Restore button posts only its record).
 */
(function () {
  'use strict';
  document.addEventListener('change', function (e) {
    var all = e.target.closest && e.target.closest('input[data-select-all]');
    if (!all) return;
    var form = all.getAttribute('data-select-all');
    document.querySelectorAll('input[type="checkbox"][name="item"][form="' + form + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
