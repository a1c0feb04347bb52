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

    // Copy buttons: <button data-copy="#input-id">.
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
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
    });

    // A method picker with samples (<select data-samples="#json-script-id" data-fills="#textarea-id">):
    // picking a method puts its sample request in the box.
    document.querySelectorAll("select[data-samples]").forEach(function (select) {
      var samples = JSON.parse(document.querySelector(select.getAttribute("data-samples")).textContent);
      var box = document.querySelector(select.getAttribute("data-fills"));
      select.addEventListener("change", function () {
        if (box && samples[select.value]) box.value = JSON.stringify(samples[select.value], null, 2);
      });
    });

    // Inputs marked data-select-on-focus select their whole value (a token to copy by hand).
    document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  });
})();
