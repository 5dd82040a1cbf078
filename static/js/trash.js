/*
 * Trash page: the header checkbox selects or clears every row of the bulk form
 * (rows point at it with form="..."; the table is not inside the form, so a
 * row's own Restore button posts only its record). The bulk buttons stay
 * disabled until a row is selected.
 */
(function () {
  'use strict';
  function sync(form) {
    var any = document.querySelector('input[type="checkbox"][name="item"][form="' + form + '"]:checked') !== null;
    var owner = document.getElementById(form);
    if (!owner) return;
    owner.querySelectorAll('[data-needs-selection]').forEach(function (button) {
      button.disabled = !any;
    });
  }
  document.addEventListener('change', function (e) {
    var all = e.target.closest && e.target.closest('input[data-select-all]');
    if (all) {
      var form = all.getAttribute('data-select-all');
      document.querySelectorAll('input[type="checkbox"][name="item"][form="' + form + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
      sync(form);
      return;
    }
    var row = e.target.matches && e.target.matches('input[type="checkbox"][name="item"][form]') ? e.target : null;
    if (row) sync(row.getAttribute('form'));
  });
})();
