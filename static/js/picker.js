// Record pickers (templates/components/picker.html): htmx fetches the options as the user types;
// this file makes them a keyboard-usable combobox. Arrow keys move, Enter picks, Esc closes and puts
// the chosen name back, a click picks; "Create company '<typed>'" creates it and picks it.
(function () {
  "use strict";

  function parts(el) {
    var root = el.closest("[data-picker]");
    if (!root) return null;
    return {
      root: root,
      input: root.querySelector("[data-picker-input]"),
      value: root.querySelector("[data-picker-value]"),
      list: root.querySelector(".picker-options"),
    };
  }

  function options(p) {
    return Array.prototype.slice.call(p.list.querySelectorAll("[role=option]"));
  }

  function open(p) {
    p.list.hidden = false;
    p.input.setAttribute("aria-expanded", "true");
  }

  function close(p) {
    p.list.hidden = true;
    p.input.setAttribute("aria-expanded", "false");
    p.input.removeAttribute("aria-activedescendant");
  }

  function activate(p, option) {
    options(p).forEach(function (o) {
      o.setAttribute("aria-selected", o === option ? "true" : "false");
    });
    if (option) {
      p.input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }
  }

  function choose(p, id, label) {
    p.value.value = id;
    p.input.value = label;
    p.input.dataset.label = label;
    p.root.classList.remove("picker-unchosen");
    p.value.dispatchEvent(new Event("change", { bubbles: true }));
    close(p);
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function create(p, name) {
    var body = new URLSearchParams({ name: name });
    // Until the new company exists the field holds no choice (never the previous one).
    p.value.value = "";
    p.root.setAttribute("aria-busy", "true");
    fetch(p.root.dataset.createUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        });
      })
      .then(function (result) {
        p.root.removeAttribute("aria-busy");
        if (result.ok) {
          choose(p, result.data.id, result.data.label);
        } else {
          p.list.innerHTML = "";
          var note = document.createElement("div");
          note.className = "picker-empty field-error";
          note.textContent = result.data.error || "Could not create it.";
          p.list.appendChild(note);
          open(p);
        }
      });
  }

  function pick(p, option) {
    if (!option) return;
    if (option.dataset.create !== undefined) {
      create(p, option.dataset.create);
    } else {
      choose(p, option.dataset.id, option.dataset.label);
    }
  }

  document.addEventListener("keydown", function (event) {
    if (!event.target.matches || !event.target.matches("[data-picker-input]")) return;
    var p = parts(event.target);
    if (!p) return;
    var all = options(p);
    var current = all.indexOf(p.list.querySelector("[aria-selected=true]"));
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (p.list.hidden) open(p);
      if (!all.length) return;
      var next = event.key === "ArrowDown" ? current + 1 : current - 1;
      if (next >= all.length) next = 0;
      if (next < 0) next = all.length - 1;
      activate(p, all[next]);
    } else if (event.key === "Enter") {
      if (!p.list.hidden && current >= 0) {
        event.preventDefault(); // pick, do not submit the form
        pick(p, all[current]);
      }
    } else if (event.key === "Escape") {
      if (!p.list.hidden) {
        event.preventDefault();
        event.stopPropagation();
      }
      p.input.value = p.value.value ? p.input.dataset.label || "" : "";
      p.root.classList.remove("picker-unchosen");
      close(p);
    }
  });

  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("[data-picker-input]")) return;
    var p = parts(event.target);
    if (!p) return;
    // What is typed is not a choice until an option is picked; an emptied box clears the choice.
    if (!p.input.value.trim()) {
      p.value.value = "";
      p.input.dataset.label = "";
    }
    p.root.classList.toggle("picker-unchosen", p.input.value.trim() !== (p.input.dataset.label || ""));
  });

  document.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest(".picker-options [role=option]");
    if (option) {
      event.preventDefault(); // keep the focus in the box
      pick(parts(option), option);
      return;
    }
    document.querySelectorAll("[data-picker]").forEach(function (root) {
      if (!root.contains(event.target)) close(parts(root));
    });
  });

  document.addEventListener("focusout", function (event) {
    if (!event.target.matches || !event.target.matches("[data-picker-input]")) return;
    var p = parts(event.target);
    setTimeout(function () {
      if (p && !p.root.contains(document.activeElement)) close(p);
    }, 150);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.classList || !target.classList.contains("picker-options")) return;
    var p = parts(target);
    if (!p || document.activeElement !== p.input) return;
    open(p);
    var first = options(p).filter(function (o) {
      return o.dataset.id !== "";
    })[0];
    activate(p, p.input.value.trim() ? first : null);
  });
})();
