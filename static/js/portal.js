/* Small progressive enhancements for every page; each page works without them. */
(function () {
  "use strict";
  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");

  document.addEventListener("DOMContentLoaded", function () {
    // The user menu (<details>): close it on Escape or on a click elsewhere.
    var menus = document.querySelectorAll("details.menu");
    document.addEventListener("click", function (event) {
      menus.forEach(function (menu) {
        if (menu.open && !menu.contains(event.target)) menu.open = false;
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      menus.forEach(function (menu) {
        if (menu.open) {
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      });
    });

    // Copy buttons: <button data-copy="#input-id" hidden>, shown once this script runs. The click is
    // delegated and htmx:load shows the ones htmx brings in later (a secret shown once in a swapped section).
    var showCopyButtons = function (root) {
      if (root.querySelectorAll) root.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
    };
    showCopyButtons(document);
    document.addEventListener("htmx:load", function (event) { showCopyButtons(event.target); });
    document.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("[data-copy]");
      var source = button && document.querySelector(button.getAttribute("data-copy"));
      if (!source) return;
      var label = button.textContent;
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1600);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(done);
      } else {
        source.select();
        document.execCommand("copy");
        done();
      }
    });

    // A method picker with samples (<select data-samples="{JSON: method -> sample}" data-fills="#textarea-id">):
    // picking a method puts its sample request in the box. Delegated, and the samples read when the
    // method changes: htmx may have replaced the picker (a swap brings another model's methods). The samples
    // are in the attribute itself: htmx drops <script> elements, JSON ones too, from what it swaps in.
    document.addEventListener("change", function (event) {
      var select = event.target;
      if (!select.matches || !select.matches("select[data-samples]")) return;
      var box = document.querySelector(select.getAttribute("data-fills"));
      var samples = {};
      try { samples = JSON.parse(select.getAttribute("data-samples")) || {}; } catch (e) { samples = {}; }
      if (box && samples[select.value]) box.value = JSON.stringify(samples[select.value], null, 2);
    });

    // Inputs marked data-select-on-focus select their whole value (a token to copy by hand).
    document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });

    // A plain form marked data-confirm="question" is sent only once the question is answered OK (an inline
    // onsubmit would be refused by the Content-Security-Policy; htmx forms have hx-confirm).
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.hasAttribute && form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });

    setUpNavToggle();
    setUpCollapsibles(document);
    document.querySelectorAll("#toasts .toast").forEach(setUpToast);
  });

  // The top bar's menu button (narrow screens): shows or hides the main links.
  function setUpNavToggle() {
    var button = document.querySelector(".nav-toggle");
    var topbar = document.querySelector(".topbar");
    if (!button || !topbar) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var open = topbar.classList.toggle("topbar--open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && topbar.classList.contains("topbar--open")) {
        topbar.classList.remove("topbar--open");
        button.setAttribute("aria-expanded", "false");
        button.focus();
      }
    });
  }

  // <details data-collapse-below="860" open>: open on wide screens (its summary is hidden there),
  // closed at first on narrow ones; a reader's choice is kept when htmx replaces it.
  var chosenOpen = {};
  var watched = {};
  function setUpCollapsibles(root) {
    root.querySelectorAll("details[data-collapse-below]").forEach(function (details) {
      var narrow = window.matchMedia("(max-width: " + details.getAttribute("data-collapse-below") + "px)");
      var key = details.id || "details";
      details.open = !narrow.matches || chosenOpen[key] === true;
      details.addEventListener("toggle", function () {
        if (narrow.matches) chosenOpen[key] = details.open;
      });
      if (!watched[key]) {
        watched[key] = true;
        narrow.addEventListener("change", function () {
          var current = document.getElementById(details.id) || details;
          current.open = !narrow.matches || chosenOpen[key] === true;
        });
      }
    });
  }

  // Toasts (base.html #toasts): the page's Django messages, and those an htmx answer carries in its
  // HX-Trigger header ({"toast": {"level": "success", "text": "..."}}, or a list of them: htmx hands a list
  // over as `value`; acumos_portal.htmx.add_toast writes it). Each has a close button; a success or an info
  // fades after a while unless the pointer or the focus is on it; a warning or an error stays until closed.
  var TOAST_FADES_AFTER_MS = 8000;
  var TOAST_LEVELS = ["success", "info", "warning", "error"];

  function setUpToast(toast) {
    var close = toast.querySelector("[data-toast-close]");
    if (close) close.hidden = false;
    if (toast.classList.contains("toast--success") || toast.classList.contains("toast--info")) fadeLater(toast);
  }

  function fadeLater(toast) {
    setTimeout(function () {
      if (!toast.isConnected) return;
      if (toast.matches(":hover") || toast.contains(document.activeElement)) return fadeLater(toast);
      dismissToast(toast);
    }, TOAST_FADES_AFTER_MS);
  }

  function dismissToast(toast) {
    if (toast.classList.contains("toast--leaving")) return;
    var hadFocus = toast.contains(document.activeElement);
    toast.classList.add("toast--leaving");
    // Removed once faded out (at once when motion is reduced: no transition ends then).
    var reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    setTimeout(function () { toast.remove(); }, reduced ? 0 : 260);
    if (hadFocus) {
      var main = document.getElementById("main");
      if (main) main.focus({ preventScroll: true });  // not lost on <body>; the reader stays where they were
    }
  }

  function showToast(level, text) {
    var box = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!box || !template || !text) return;
    level = TOAST_LEVELS.indexOf(level) === -1 ? "info" : level;
    var toast = template.content.firstElementChild.cloneNode(true);
    var urgent = level === "error" || level === "warning";
    toast.className = "toast toast--" + level;
    toast.setAttribute("role", urgent ? "alert" : "status");
    toast.setAttribute("aria-live", urgent ? "assertive" : "polite");
    box.appendChild(toast);
    // The text goes in after the live region is in the page, so that screen readers hear it arrive.
    setTimeout(function () { toast.querySelector(".toast__text").textContent = String(text); }, 50);
    setUpToast(toast);
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-toast-close]");
    if (close) dismissToast(close.closest(".toast"));
  });
  // A page htmx restores from its history cache brings back the toasts it had then: they are stale.
  document.addEventListener("htmx:historyRestore", function () {
    var box = document.getElementById("toasts");
    if (box) box.replaceChildren();
  });
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    var toasts = Array.isArray(detail.value) ? detail.value : [detail];
    toasts.forEach(function (toast) {
      if (toast) showToast(toast.level, toast.text);
    });
  });

  // htmx: requests from an element marked data-drop-empty leave out empty parameters (cleaner
  // addresses in the history); swapped-in content gets the same enhancements as the page.
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt.closest && event.detail.elt.closest("[data-drop-empty]");
    if (!form || event.detail.verb !== "get") return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (name) {
      if (params[name] === "") delete params[name];
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    // Restoring history swaps without a target element: the whole page is then set up again.
    setUpCollapsibles(event.detail.target || document);
    // A filter link that was followed is gone: keep keyboard users in the results, not at the page top.
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (source && source.tagName === "A" && !document.body.contains(source)) {
      var landing = event.detail.target && event.detail.target.querySelector("[data-focus-after-swap]");
      if (landing) landing.focus({ preventScroll: true });
    }
  });
})();
