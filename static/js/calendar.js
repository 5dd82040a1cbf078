/*
 * The calendar of activities (templates/activities/calendar.html): a drop reschedules.
 *
 * Every day (month view) or hour of a day (week view) is a SortableJS list [data-calendar-drop]
 * with data-date (and data-time). On SortableJS's "end" (fired on the list the drag started
 * from) we post the activity's new day, hour and the version it was shown at; the answer
 * replaces #calendar and brings the Undo toast. On a refusal (a version conflict, a permission)
 * the server's toast says why and the calendar is fetched again, so the item goes back.
 */
(function () {
  'use strict';

  var pending = null;

  function calendarEl() { return document.getElementById('calendar'); }

  function reload() {
    var cal = calendarEl();
    if (!cal) return;
    htmx.ajax('GET', cal.getAttribute('data-calendar-url'), { target: '#calendar', swap: 'outerHTML' });
  }

  document.addEventListener('end', function (evt) {
    var item = evt.item;
    if (!item || !item.hasAttribute || !item.hasAttribute('data-activity-id')) return;
    var to = evt.to;
    var from = evt.from;
    if (!to || !to.hasAttribute('data-calendar-drop') || to === from) return;
    var values = { date: to.getAttribute('data-date'), version: item.getAttribute('data-version') || '' };
    if (to.hasAttribute('data-time')) values.time = to.getAttribute('data-time');
    pending = item;
    item.setAttribute('aria-busy', 'true');
    htmx.ajax('POST', item.getAttribute('data-reschedule-url'), {
      source: item, target: '#calendar', swap: 'outerHTML', values: values
    });
  });

  document.addEventListener('htmx:afterRequest', function (evt) {
    if (!pending || evt.detail.elt !== pending) return;
    pending = null;
    if (!evt.detail.successful) reload();
  });
})();
