/*
 * The filter builder (templates/components/filter_builder.html), for every list page.
 *
 * Each row posts four parallel fields: group, field, op and a hidden `value`. The visible
 * value widgets carry no name: they are built from the field metadata (the JSON embedded by
 * the macro) and write the engine's text form into the hidden input (lists comma-separated,
 * "," and "\" escaped; between as "low,high"). Rows and groups are added and removed here
 * without a page load; groups are renumbered so the names g1..gN stay contiguous.
 * Loaded with `defer` after htmx; wired through htmx.onLoad so a re-rendered builder (422)
 * is hydrated again.
 */
(function () {
  'use strict';

  function escapeItem(text) { return String(text).replace(/\\/g, '\\\\').replace(/,/g, '\\,'); }

  function splitList(text) {
    var items = [];
    var current = '';
    for (var i = 0; i < text.length; i++) {
      var ch = text[i];
      if (ch === '\\' && i + 1 < text.length) { current += text[++i]; continue; }
      if (ch === ',') { items.push(current); current = ''; continue; }
      current += ch;
    }
    items.push(current);
    return items;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text != null) node.textContent = text;
    return node;
  }

  function option(value, label, selected) {
    var node = el('option', { value: value }, label);
    if (selected) node.selected = true;
    return node;
  }

  function inputType(meta) {
    if (meta.type === 'number' || meta.type === 'money') return 'number';
    if (meta.type === 'date' || meta.type === 'datetime') return 'date';
    return 'text';
  }

  function wireBuilder(form) {
    if (form._crmFilterBuilder) return;
    form._crmFilterBuilder = true;
    var dataEl = form.querySelector('[data-filter-fields]');
    var fields = dataEl ? JSON.parse(dataEl.textContent) : [];
    var byName = {};
    fields.forEach(function (f) { byName[f.name] = f; });

    function opMeta(meta, op) {
      return (meta && meta.operators || []).filter(function (o) { return o.value === op; })[0];
    }

    function sync(row) {
      var hidden = row.querySelector('[data-value]');
      var slot = row.querySelector('[data-value-slot]');
      var meta = byName[row.querySelector('[data-field]').value];
      var op = opMeta(meta, row.querySelector('[data-op]').value);
      if (!op || op.arity === 'none') { hidden.value = ''; return; }
      var chips = slot.querySelector('[data-chips]');
      if (chips) {
        hidden.value = Array.prototype.filter.call(chips.querySelectorAll('input[type=checkbox]'), function (box) {
          return box.checked;
        }).map(function (box) { return escapeItem(box.value); }).join(',');
        return;
      }
      var widgets = slot.querySelectorAll('input, select');
      if (op.arity === 'pair') {
        hidden.value = widgets.length === 2 && (widgets[0].value || widgets[1].value)
          ? escapeItem(widgets[0].value) + ',' + escapeItem(widgets[1].value) : '';
      } else if (op.arity === 'list' && widgets[0] && widgets[0].multiple) {
        hidden.value = Array.prototype.filter.call(widgets[0].options, function (o) { return o.selected; })
          .map(function (o) { return escapeItem(o.value); }).join(',');
      } else {
        hidden.value = widgets[0] ? widgets[0].value : '';
      }
    }

    // Build the value widget(s) for the row's field and operator, keeping `current`.
    function buildValue(row, current) {
      var slot = row.querySelector('[data-value-slot]');
      slot.textContent = '';
      var meta = byName[row.querySelector('[data-field]').value];
      var op = opMeta(meta, row.querySelector('[data-op]').value);
      if (!meta || !op || op.arity === 'none') { sync(row); return; }
      var label = meta.label + ' value';
      if (op.arity === 'range') {
        var ranges = el('select', { 'aria-label': label });
        (meta.ranges || []).forEach(function (r) { ranges.appendChild(option(r.value, r.label, r.value === current)); });
        slot.appendChild(ranges);
      } else if (meta.choices && meta.choices.length && op.arity === 'list') {
        // "has any of" / "is any of": one checkbox chip per choice, not a native multi-select.
        var chosenItems = splitList(current || '');
        var chips = el('div', { 'class': 'filter-chips', 'role': 'group', 'aria-label': label, 'data-chips': '' });
        meta.choices.forEach(function (c) {
          var box = el('input', { type: 'checkbox', value: c.value });
          box.checked = chosenItems.indexOf(c.value) >= 0;
          var chip = el('label', {});
          chip.appendChild(box);
          chip.appendChild(document.createTextNode(' ' + c.label));
          chips.appendChild(chip);
        });
        slot.appendChild(chips);
      } else if (meta.choices && meta.choices.length) {
        var select = el('select', { 'aria-label': label });
        select.appendChild(option('', 'Choose…', !current));
        meta.choices.forEach(function (c) { select.appendChild(option(c.value, c.label, c.value === current)); });
        slot.appendChild(select);
      } else if (op.arity === 'pair') {
        var parts = current ? splitList(current) : ['', ''];
        [0, 1].forEach(function (i) {
          var input = el('input', { type: inputType(meta), 'aria-label': meta.label + (i ? ' to' : ' from') });
          if (inputType(meta) === 'number') input.step = 'any';
          input.value = parts[i] || '';
          slot.appendChild(input);
          if (i === 0) slot.appendChild(el('span', { 'class': 'muted' }, 'and'));
        });
      } else {
        var type = op.arity === 'list' ? 'text' : inputType(meta);
        var input = el('input', { type: type, 'aria-label': label });
        if (type === 'number') input.step = 'any';
        if (op.arity === 'list') input.placeholder = 'a, b, c';
        input.value = current || '';
        slot.appendChild(input);
      }
      sync(row);
    }

    function buildOps(row, keepOp) {
      var select = row.querySelector('[data-op]');
      var meta = byName[row.querySelector('[data-field]').value];
      select.textContent = '';
      if (!meta) {
        if (keepOp) select.appendChild(option(keepOp, keepOp, true));
        select.disabled = !keepOp;
        return;
      }
      select.disabled = false;
      var found = false;
      meta.operators.forEach(function (o) {
        var selected = o.value === keepOp;
        found = found || selected;
        select.appendChild(option(o.value, o.label, selected));
      });
      if (keepOp && !found) select.insertBefore(option(keepOp, keepOp + ' (not allowed)', true), select.firstChild);
    }

    function hydrate(row) {
      if (row._crmHydrated) return;
      row._crmHydrated = true;
      var opSelect = row.querySelector('[data-op]');
      buildOps(row, opSelect.value);
      buildValue(row, row.querySelector('[data-value]').value);
    }

    function clearError(row) {
      row.classList.remove('has-error');
      var error = row.querySelector('.filter-error');
      if (error) error.textContent = '';
    }

    function renumber() {
      form.querySelectorAll('[data-filter-groups] > [data-filter-group]').forEach(function (group, i) {
        var number = String(i + 1);
        group.querySelector('[data-group-match]').name = 'g' + number;
        group.querySelectorAll('[data-group-input]').forEach(function (input) { input.value = number; });
      });
      form.querySelectorAll(':scope > [data-filter-rows] [data-group-input]').forEach(function (input) {
        input.value = '0';
      });
    }

    function newRow(container) {
      var template = form.querySelector('template[data-row-template]');
      var row = template.content.firstElementChild.cloneNode(true);
      container.appendChild(row);
      hydrate(row);
      renumber();
      row.querySelector('[data-field]').focus();
      return row;
    }

    form.addEventListener('change', function (e) {
      var row = e.target.closest('[data-filter-row]');
      if (!row) return;
      if (e.target.matches('[data-field]')) {
        clearError(row);
        buildOps(row, '');
        buildValue(row, '');
      } else if (e.target.matches('[data-op]')) {
        clearError(row);
        buildValue(row, row.querySelector('[data-value]').value);
      } else {
        sync(row);
      }
    });

    form.addEventListener('input', function (e) {
      var row = e.target.closest('[data-filter-row]');
      if (row && e.target.closest('[data-value-slot]')) sync(row);
    });

    form.addEventListener('click', function (e) {
      var button = e.target.closest('button');
      if (!button || !form.contains(button)) return;
      if (button.matches('[data-add-row]')) {
        var group = button.closest('[data-filter-group]');
        newRow((group || form).querySelector('[data-filter-rows]'));
      } else if (button.matches('[data-remove-row]')) {
        var owner = button.closest('[data-filter-group]');
        button.closest('[data-filter-row]').remove();
        if (owner && !owner.querySelector('[data-filter-row]')) owner.remove();
        renumber();
      } else if (button.matches('[data-add-group]')) {
        var template = form.querySelector('template[data-group-template]');
        var box = template.content.firstElementChild.cloneNode(true);
        form.querySelector('[data-filter-groups]').appendChild(box);
        newRow(box.querySelector('[data-filter-rows]'));
      } else if (button.matches('[data-remove-group]')) {
        button.closest('[data-filter-group]').remove();
        renumber();
      } else if (button.matches('[data-clear-filter]')) {
        form.querySelectorAll('[data-filter-row], [data-filter-group]').forEach(function (n) {
          if (!n.closest('template')) n.remove();
        });
        form.requestSubmit();
      }
    });

    form.querySelectorAll('[data-filter-row]').forEach(hydrate);
  }

  htmx.onLoad(function (root) {
    if (!root || root.nodeType !== 1) return;
    if (root.matches('[data-filter-builder]')) wireBuilder(root);
    root.querySelectorAll('[data-filter-builder]').forEach(wireBuilder);
  });
})();
