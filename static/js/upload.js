/* The onboarding form: a drop zone that sorts dropped files onto the right inputs, and an upload
   through XMLHttpRequest that shows its progress. Without this script the form posts normally. */
(function () {
  "use strict";

  var SEPARATE = ["metadata", "schema", "model", "license"];

  function partFor(file) {
    var name = file.name.toLowerCase();
    if (name === "metadata.json") return "metadata";
    if (name === "license.json" || name === "licence.json") return "license";
    if (name.slice(-6) === ".proto") return "schema";
    if (name === "modelpackage.zip" || name === "model.zip") return "model";
    if (name.slice(-4) === ".zip") return "bundle";
    if (name.slice(-5) === ".json" && name.indexOf("licen") !== -1) return "license";
    if (name.slice(-5) === ".json") return "metadata";
    return null;
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return bytes + " B";
    var units = ["KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = -1;
    do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
    return value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
  }

  function setFiles(input, files) {
    var transfer = new DataTransfer();
    files.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
  }

  function init(form) {
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    var inputs = {};
    form.querySelectorAll("input[type=file][name]").forEach(function (input) { inputs[input.name] = input; });
    var zone = form.querySelector("[data-dropzone]");
    var picker = form.querySelector("[data-dropzone-picker]");
    var list = form.querySelector("[data-dropzone-files]");
    var status = form.querySelector("[data-dropzone-status]");
    var progress = form.querySelector("[data-upload-progress]");
    var bar = progress && progress.querySelector("progress");
    var label = progress && progress.querySelector("[data-upload-label]");
    var percent = progress && progress.querySelector("[data-upload-percent]");
    var submit = form.querySelector("[type=submit]");
    var maxBytes = parseInt(form.dataset.maxBytes || "0", 10);

    function chosen() {
      var files = [];
      Object.keys(inputs).forEach(function (part) {
        Array.prototype.forEach.call(inputs[part].files || [], function (file) { files.push([part, file]); });
      });
      return files;
    }

    function refresh() {
      if (!list) return;
      list.textContent = "";
      chosen().forEach(function (pair) {
        var item = document.createElement("li");
        item.textContent = pair[1].name + " · " + formatBytes(pair[1].size);
        list.appendChild(item);
      });
    }

    function assign(files) {
      var unknown = [];
      var byPart = {};
      Array.prototype.forEach.call(files, function (file) {
        var part = partFor(file);
        if (part && inputs[part]) byPart[part] = file; else unknown.push(file.name);
      });
      if (byPart.bundle && Object.keys(byPart).length === 1) {
        SEPARATE.forEach(function (part) { if (inputs[part]) inputs[part].value = ""; });
      } else if (Object.keys(byPart).length) {
        delete byPart.bundle;
        if (inputs.bundle) inputs.bundle.value = "";
      }
      Object.keys(byPart).forEach(function (part) { setFiles(inputs[part], [byPart[part]]); });
      refresh();
      if (status) {
        status.textContent = unknown.length
          ? "Not recognised (ignored): " + unknown.join(", ") + ". Expected metadata.json, model.proto, "
            + "modelpackage.zip, license.json or one bundle zip."
          : "";
      }
    }

    Object.keys(inputs).forEach(function (part) {
      inputs[part].addEventListener("change", function () {
        if (part === "bundle" && inputs.bundle.files.length) {
          SEPARATE.forEach(function (p) { if (inputs[p]) inputs[p].value = ""; });
        } else if (part !== "bundle" && inputs[part].files.length && inputs.bundle) {
          inputs.bundle.value = "";
        }
        refresh();
      });
    });

    if (zone) {
      ["dragenter", "dragover"].forEach(function (type) {
        zone.addEventListener(type, function (event) {
          event.preventDefault();
          zone.classList.add("dropzone--over");
        });
      });
      ["dragleave", "dragend", "drop"].forEach(function (type) {
        zone.addEventListener(type, function (event) {
          event.preventDefault();
          zone.classList.remove("dropzone--over");
        });
      });
      zone.addEventListener("drop", function (event) {
        if (event.dataTransfer && event.dataTransfer.files.length) assign(event.dataTransfer.files);
      });
    }
    if (picker) {
      picker.addEventListener("change", function () {
        assign(picker.files);
        picker.value = "";
      });
    }
    refresh();

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest || !progress) return;  // plain post
      event.preventDefault();
      var total = chosen().reduce(function (sum, pair) { return sum + pair[1].size; }, 0);
      if (maxBytes && total > maxBytes) {
        status.textContent = "These files add up to " + formatBytes(total) + ", more than the limit of "
          + formatBytes(maxBytes) + ".";
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      var csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
      if (csrf) xhr.setRequestHeader("X-CSRFToken", csrf.value);
      progress.hidden = false;
      bar.value = 0;
      submit.disabled = true;
      submit.dataset.label = submit.textContent;
      submit.textContent = "Uploading…";

      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var share = e.loaded / e.total;
        bar.value = share * 100;
        percent.textContent = Math.floor(share * 100) + "%";
        label.textContent = "Uploading " + formatBytes(e.loaded) + " of " + formatBytes(e.total);
      });
      xhr.upload.addEventListener("load", function () {
        bar.value = 100;
        percent.textContent = "100%";
        label.textContent = "Uploaded. Checking the bundle…";
        submit.textContent = "Checking…";
      });
      xhr.addEventListener("load", function () {
        var type = xhr.getResponseHeader("Content-Type") || "";
        if (xhr.status === 201 && type.indexOf("application/json") === 0) {
          label.textContent = "Accepted. Opening the onboarding job…";
          window.location.assign(JSON.parse(xhr.responseText).location);
        } else if ([400, 413, 429, 503, 507].indexOf(xhr.status) !== -1 && type.indexOf("text/html") === 0) {
          replace(xhr.responseText);
        } else if (xhr.status === 200 && xhr.responseURL && xhr.responseURL.indexOf(form.action) === -1) {
          window.location.assign(xhr.responseURL);  // signed out meanwhile: the sign-in page
        } else {
          failed("The server answered " + xhr.status + " " + xhr.statusText + ". Please try again.");
        }
      });
      xhr.addEventListener("error", function () {
        failed("The upload was interrupted (network error). Please try again.");
      });
      xhr.send(new FormData(form));
    });

    function failed(message) {
      progress.hidden = true;
      submit.disabled = false;
      submit.textContent = submit.dataset.label;
      status.textContent = message;
    }

    function replace(html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("[data-onboard-panel]");
      var panel = form.closest("[data-onboard-panel]");
      if (!fresh || !panel) {
        failed("The upload was refused. Please check the files and try again.");
        return;
      }
      panel.replaceWith(fresh);
      var next = fresh.querySelector("form[data-upload]");
      // Keep what was chosen, so only the file that is wrong needs replacing.
      Object.keys(inputs).forEach(function (part) {
        var target = next.querySelector("input[type=file][name=" + part + "]");
        if (target && inputs[part].files.length) setFiles(target, Array.prototype.slice.call(inputs[part].files));
      });
      init(next);
      var note = next.querySelector("[data-dropzone-status]");
      if (note && chosen().length) note.textContent = "Your files are still selected: replace the one that is wrong.";
      var summary = fresh.querySelector("[data-error-summary]");
      if (summary) summary.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.DataTransfer) return;
    init(document.querySelector("form[data-upload]"));
  });
})();
