/* The model page's small enhancements; the page works without them. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var box = document.createElement("textarea");
    box.value = text;
    box.setAttribute("readonly", "");
    box.style.position = "fixed";
    box.style.opacity = "0";
    document.body.appendChild(box);
    box.select();
    document.execCommand("copy");
    box.remove();
    return Promise.resolve();
  }

  // Copy buttons for code blocks: <button data-copy-text="#pre-id">.
  function setUpCopyButtons(root) {
    root.querySelectorAll("[data-copy-text]").forEach(function (button) {
      if (button.dataset.ready) return;
      button.dataset.ready = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy-text"));
        if (!source) return;
        var label = button.textContent;
        copyText(source.textContent).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1600);
        });
      });
    });
  }

  // Tabs: [data-tabs] holds a hidden [data-tablist] of buttons (data-tab="panel id") and the [data-panel]s.
  // Without this script both panels show, one under the other, each with its own title.
  function setUpTabs(root) {
    root.querySelectorAll("[data-tabs]").forEach(function (box) {
      if (box.dataset.tabsReady !== undefined) return;
      var list = box.querySelector("[data-tablist]");
      var tabs = Array.prototype.slice.call(list.querySelectorAll("[data-tab]"));
      list.setAttribute("role", "tablist");
      list.setAttribute("aria-label", "Example in");
      tabs.forEach(function (tab, index) {
        var panel = document.getElementById(tab.dataset.tab);
        tab.id = tab.dataset.tab + "-tab";
        tab.setAttribute("role", "tab");
        tab.setAttribute("aria-controls", panel.id);
        panel.setAttribute("role", "tabpanel");
        panel.setAttribute("aria-labelledby", tab.id);
        tab.addEventListener("click", function () { select(tabs, index); });
        tab.addEventListener("keydown", function (event) {
          var step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
          if (event.key === "Home") step = -index;
          if (event.key === "End") step = tabs.length - 1 - index;
          if (step === undefined) return;
          event.preventDefault();
          var next = (index + step + tabs.length) % tabs.length;
          select(tabs, next);
          tabs[next].focus();
        });
      });
      list.hidden = false;
      box.dataset.tabsReady = "";
      select(tabs, 0);
    });
  }

  function select(tabs, chosen) {
    tabs.forEach(function (tab, index) {
      var on = index === chosen;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.dataset.tab).hidden = !on;
    });
  }

  // A reply box opened inline: Cancel closes it and gives the focus back to its Reply link.
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-cancel-reply]");
    if (!cancel) return;
    var slot = cancel.closest(".comment__reply");
    if (!slot) return;
    event.preventDefault();
    slot.innerHTML = "";
    var reply = document.querySelector('[aria-controls="' + slot.id + '"]');
    if (reply) reply.focus();
  });

  function enhance(root) {
    setUpCopyButtons(root);
    setUpTabs(root);
  }

  // A form sent back with errors (the page drawn again after a POST): bring its first problem into view.
  function focusFirstError() {
    var error = document.querySelector("#main form .field-errors, #main form .errorlist");
    if (!error) return;
    var form = error.closest("form");
    var control = form.querySelector(".field--error input:not([type=hidden]), .field--error textarea, " +
                                     ".field--error select") ||
                  form.querySelector("input:not([type=hidden]), textarea, select");
    var details = form.closest("details");
    if (details) details.open = true;
    if (control) control.focus({ preventScroll: true });
    form.scrollIntoView({ block: "center" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    focusFirstError();
  });
  // Sections htmx swaps in (comments, reviews) get the same treatment.
  document.addEventListener("htmx:afterSettle", function (event) { enhance(event.target); });
})();
