/* The monitoring panel's charts (templates/monitoring/_panel.html), drawn with uPlot (static/vendor/uplot)
   from the panel's JSON (monitoring.selectors.chart_data): traffic and latency, error rate, drift per field
   against its threshold, quality per output field. Every chart marks the swaps (grey dashed lines, the
   version at the top, the whole change on hover) and the time an alert of its kind was firing (red bands).

   htmx swaps a new panel in every minute: each panel is drawn when it arrives (htmx:load), the charts of
   the panel it replaced are destroyed, and a zoom the reader chose is kept. Nothing here sets a style
   attribute or evaluates text: uPlot styles through the CSSOM, which the Content-Security-Policy allows. */
(function () {
  "use strict";

  var VARIANT_COLORS = { live: "#2456d6", canary: "#c2410c", shadow: "#7c3aed" };
  var VARIANT_NAMES = { live: "Live", canary: "Canary", shadow: "Shadow" };
  // Okabe-Ito's colour-blind-safe set, less its vermillion (thresholds are red), and two more.
  var FIELD_COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#8c564b", "#4b5563", "#9467bd"];
  var THRESHOLD = "#b91c1c";
  var SWAP = "#4b5563";
  var ALERT_BAND = "rgba(185, 28, 28, 0.10)";
  var PHONE = window.matchMedia("(max-width: 640px)");
  var HIGHER_IS_BETTER = { accuracy: true };

  var charts = [];       // the uPlot instances drawn now
  var hovered = null;    // the one the pointer is on (the others follow its cursor, without a tip)
  var zoom = null;       // {min, max} the reader zoomed to (kept across refreshes), or null
  var syncing = false;

  // ---------------------------------------------------------------- formatting

  function number(value, digits) {
    if (value == null) return "—";
    if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
    return String(Number(value.toPrecision(digits || 3)));
  }
  function ms(value) { return value == null ? "—" : number(value) + " ms"; }
  function percent(value) { return value == null ? "—" : number(value) + " %"; }

  function rgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function constant(times, value) {
    return times.map(function () { return value; });
  }

  function fromZero(u, min, max) {
    return [0, max > 0 ? max * 1.1 : 1];
  }

  // ---------------------------------------------------------------- the four charts

  function traffic(data) {
    var series = [], values = [];
    data.variants.forEach(function (variant) {
      var color = VARIANT_COLORS[variant] || "#333", name = VARIANT_NAMES[variant] || variant;
      var figures = data.traffic[variant];
      series.push({ label: name + " req/s", scale: "rps", stroke: rgba(color, 0.55), width: 1,
                    fill: rgba(color, 0.12), value: function (u, v) { return number(v); } });
      values.push(figures.rps);
      series.push({ label: name + " p50", scale: "ms", stroke: color, width: 1.5, dash: [5, 4],
                    value: function (u, v) { return ms(v); } });
      values.push(figures.p50);
      series.push({ label: name + " p99", scale: "ms", stroke: color, width: 2,
                    value: function (u, v) { return ms(v); } });
      values.push(figures.p99);
    });
    // The bound is drawn once p99 comes within a quarter of it: a 1000 ms line beside 4 ms latencies would
    // flatten them against the axis (the rules below the charts say the bound either way).
    var worstP99 = Math.max.apply(null, Object.keys(data.traffic).map(function (variant) {
      return Math.max.apply(null, data.traffic[variant].p99.filter(function (v) { return v != null; }).concat([0]));
    }).concat([0]));
    if (data.rules.p99 != null && worstP99 * 4 >= data.rules.p99) {
      series.push(bound("p99 alert bound", "ms", ms));
      values.push(constant(data.t, data.rules.p99));
    }
    return {
      series: series, values: values, alertKinds: ["p99"],
      scales: { rps: { range: fromZero }, ms: { range: fromZero } },
      axes: [axis("rps", "req/s", function (v) { return number(v); }),
             axis("ms", "ms", function (v) { return number(v); }, 1)],
    };
  }

  function errors(data) {
    var series = [], values = [];
    data.variants.forEach(function (variant) {
      series.push({ label: (VARIANT_NAMES[variant] || variant) + " errors", scale: "pct",
                    stroke: VARIANT_COLORS[variant] || "#333", width: 2, value: function (u, v) { return percent(v); } });
      values.push(data.traffic[variant].error_rate.map(function (v) { return v == null ? null : v * 100; }));
    });
    if (data.rules.error_rate != null) {
      series.push(bound("alert bound", "pct", percent));
      values.push(constant(data.t, data.rules.error_rate * 100));
    }
    return {
      series: series, values: values, alertKinds: ["error_rate"],
      scales: { pct: { range: function (u, min, max) { return [0, Math.max(max * 1.15, 1)]; } } },
      axes: [axis("pct", "% of requests", function (v) { return number(v) + " %"; })],
    };
  }

  function drift(data) {
    var series = [], values = [], thresholds = {};
    data.drift.fields.forEach(function (field, i) {
      series.push({ label: field.name, scale: "score", stroke: FIELD_COLORS[i % FIELD_COLORS.length], width: 2,
                    value: function (u, v) { return number(v); } });
      values.push(field.values);
      if (field.threshold != null) (thresholds[field.threshold] = thresholds[field.threshold] || []).push(field.name);
    });
    // One red line per threshold value: one in all when every field has the same (the usual case).
    var distinct = Object.keys(thresholds);
    distinct.forEach(function (threshold) {
      var label = distinct.length === 1 ? "threshold" : "threshold of " + thresholds[threshold].join(", ");
      series.push(bound(label, "score", function (v) { return number(v); }));
      values.push(constant(data.t, Number(threshold)));
    });
    return {
      series: series, values: values, alertKinds: ["drift"],
      scales: { score: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      axes: [axis("score", data.drift.measures.join(", ") || "score", function (v) { return number(v); })],
    };
  }

  function quality(data) {
    var fields = data.quality.fields;
    var higher = fields.filter(function (f) { return HIGHER_IS_BETTER[f.metric]; });
    var lower = fields.filter(function (f) { return !HIGHER_IS_BETTER[f.metric]; });
    // Accuracy (higher is better) and errors such as MAE (lower is better) do not share a scale.
    var both = higher.length && lower.length;
    var series = [], values = [], axes = [];
    fields.forEach(function (field, i) {
      var scale = HIGHER_IS_BETTER[field.metric] || !both ? "q" : "err";
      series.push({ label: field.name + (field.metric ? " (" + field.metric + ")" : ""), scale: scale,
                    stroke: FIELD_COLORS[i % FIELD_COLORS.length], width: 2,
                    value: function (u, v) { return number(v); } });
      values.push(field.values);
    });
    var metrics = function (list) {
      return list.map(function (f) { return f.metric; }).filter(function (m, i, all) { return m && all.indexOf(m) === i; });
    };
    axes.push(axis("q", (both ? metrics(higher) : data.quality.metrics).join(", ") || "value",
                   function (v) { return number(v); }));
    if (both) axes.push(axis("err", metrics(lower).join(", "), function (v) { return number(v); }, 1));
    if (data.rules.quality != null) {
      series.push(bound("alert bound", "q", function (v) { return number(v); }));
      values.push(constant(data.t, data.rules.quality));
    }
    return { series: series, values: values, alertKinds: ["quality"], scales: {}, axes: axes };
  }

  var BUILDERS = { traffic: traffic, errors: errors, drift: drift, quality: quality };

  function bound(label, scale, format) {
    return { label: label, scale: scale, stroke: THRESHOLD, width: 1.5, dash: [6, 4], points: { show: false },
             value: function (u, v) { return format(v); } };
  }

  function axis(scale, label, format, side) {
    return { scale: scale, label: label, side: side === 1 ? 1 : 3, size: PHONE.matches ? 44 : 54, labelSize: 18,
             grid: { show: side !== 1, stroke: "#eef0f3", width: 1 }, stroke: "#5f6b7a",
             ticks: { stroke: "#d1d5db", width: 1 },
             values: function (u, ticks) { return ticks.map(format); } };
  }

  // ---------------------------------------------------------------- swaps and alerts on every chart

  function marks(data, alertKinds) {
    var swaps = data.swaps, alerts = data.alerts.filter(function (a) { return alertKinds.indexOf(a.kind) >= 0; });

    function bands(u) {
      if (!alerts.length) return;
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      ctx.fillStyle = ALERT_BAND;
      alerts.forEach(function (alert) {
        var from = u.valToPos(alert.fired_at, "x", true);
        var to = u.valToPos(alert.resolved_at || data.until, "x", true);
        from = Math.max(from, box.left);
        to = Math.min(to, box.left + box.width);
        if (to > from) ctx.fillRect(from, box.top, Math.max(to - from, 2 * devicePixelRatio), box.height);
      });
      ctx.restore();
    }

    function lines(u) {
      if (!swaps.length) return;
      var ctx = u.ctx, box = u.bbox, ratio = devicePixelRatio, lastLabelEnd = -Infinity;
      ctx.save();
      ctx.strokeStyle = SWAP;
      ctx.fillStyle = SWAP;
      ctx.lineWidth = ratio;
      ctx.setLineDash([4 * ratio, 3 * ratio]);
      ctx.font = (11 * ratio) + "px system-ui, sans-serif";
      ctx.textBaseline = "top";
      swaps.forEach(function (swap) {
        var x = Math.round(u.valToPos(swap.at, "x", true)) + 0.5;
        if (x < box.left || x > box.left + box.width) return;
        ctx.beginPath();
        ctx.moveTo(x, box.top);
        ctx.lineTo(x, box.top + box.height);
        ctx.stroke();
        // The version beside its line, unless it would cover the label before (the hover says it anyway).
        var text = swap.version || swap.kind, width = ctx.measureText(text).width;
        var left = x + 3 * ratio > box.left + box.width - width ? x - 3 * ratio - width : x + 3 * ratio;
        if (left > lastLabelEnd) {
          ctx.fillText(text, left, box.top + 2 * ratio);
          lastLabelEnd = left + width + 4 * ratio;
        }
      });
      ctx.restore();
    }

    // On hover near a swap's line: what changed, by whom, when.
    function tip(u) {
      var el = u.root.querySelector(".monitoring__tip");
      if (!el) {
        el = document.createElement("div");
        el.className = "monitoring__tip";
        el.hidden = true;
        u.over.appendChild(el);
      }
      var left = u.cursor.left, near = null;
      if (hovered === u && left != null && left >= 0) {
        swaps.forEach(function (swap) {
          var x = u.valToPos(swap.at, "x");
          if (Math.abs(x - left) <= 6 && (!near || Math.abs(x - left) < Math.abs(near.x - left))) {
            near = { x: x, swap: swap };
          }
        });
      }
      if (!near) {
        el.hidden = true;
        return;
      }
      el.textContent = near.swap.label + " · " + time(data, near.swap.at) + " · " + near.swap.by;
      el.hidden = false;
      var room = u.over.clientWidth - el.offsetWidth;
      el.style.left = Math.max(0, Math.min(near.x + 8, room)) + "px";
      el.style.top = "18px";
    }

    return { drawClear: [bands], draw: [lines], setCursor: [tip] };
  }

  function time(data, seconds) {
    var date = uPlot.tzDate(new Date(seconds * 1000), zone(data));
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + " " + data.time_zone;
  }

  function zone(data) {
    return data.time_zone === "UTC" ? "Etc/UTC" : data.time_zone;
  }

  // The time axis as the rest of the page writes times: 24-hour, with the day under the first tick of each day.
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function timeTicks(data) {
    return function (u, ticks) {
      var day = null;
      return ticks.map(function (seconds) {
        var date = uPlot.tzDate(new Date(seconds * 1000), zone(data));
        var pad = function (n) { return (n < 10 ? "0" : "") + n; };
        var label = pad(date.getHours()) + ":" + pad(date.getMinutes());
        var today = date.getDate() + " " + MONTHS[date.getMonth()];
        if (today !== day) label += "\n" + today;
        day = today;
        return label;
      });
    };
  }

  // Not hovering, the legend says the latest figures (uPlot's own shows dashes then).
  function latestInLegend(data) {
    var last = data.t.length - 1;
    return function (u) {
      if (u.cursor.idx == null) u.setLegend({ idx: last });
    };
  }

  // ---------------------------------------------------------------- drawing a panel

  function size(el) {
    return { width: Math.max(el.clientWidth, 200), height: PHONE.matches ? 190 : 220 };
  }

  function draw(el, data) {
    var chart = BUILDERS[el.getAttribute("data-chart")](data);
    var hooks = marks(data, chart.alertKinds);
    var latest = latestInLegend(data);
    hooks.ready = [latest];
    hooks.setCursor.push(latest);
    hooks.setScale = [function (u, key) {
      if (key !== "x" || syncing) return;
      var x = u.scales.x, first = data.t[0], last = data.t[data.t.length - 1];
      zoom = x.min > first || x.max < last ? { min: x.min, max: x.max } : null;
      syncing = true;
      charts.forEach(function (other) {
        if (other !== u) other.setScale("x", { min: x.min, max: x.max });
      });
      syncing = false;
    }];
    var opts = Object.assign(size(el), {
      series: [{ value: function (u, v) { return v == null ? "—" : time(data, v); } }].concat(chart.series),
      scales: Object.assign({ x: { time: true } }, chart.scales),
      axes: [{ stroke: "#5f6b7a", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#d1d5db", width: 1 },
               values: timeTicks(data), space: 48 }].concat(chart.axes),
      tzDate: function (seconds) { return uPlot.tzDate(new Date(seconds * 1000), zone(data)); },
      cursor: { sync: { key: "monitoring" }, drag: { x: true, y: false } },
      legend: { live: true },
      hooks: hooks,
    });
    var u = new uPlot(opts, [data.t].concat(chart.values), el);
    u.over.addEventListener("mouseenter", function () { hovered = u; });
    u.over.addEventListener("mouseleave", function () { if (hovered === u) hovered = null; });
    var observer = new ResizeObserver(function () {
      var wanted = size(el);
      if (wanted.width !== u.width || wanted.height !== u.height) u.setSize(wanted);
    });
    observer.observe(el);
    u._monitoringObserver = observer;
    return u;
  }

  function forget(u) {
    u._monitoringObserver.disconnect();
    u.destroy();
  }

  function drawPanels(root) {
    var panel = root.id === "monitoring" ? root : root.querySelector && root.querySelector("#monitoring");
    var source = panel && panel.querySelector("#monitoring-data");
    // The charts of a panel that was replaced are no longer in the page: let them go.
    charts = charts.filter(function (u) {
      if (document.body.contains(u.root)) return true;
      forget(u);
      return false;
    });
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.getAttribute("data-json"));
    if (!data.t.length) return;
    var kept = zoom;
    syncing = true;  // a new chart sets its scales once: that is no reader zooming out
    panel.querySelectorAll("[data-chart]").forEach(function (el) {
      charts.push(draw(el, data));
    });
    syncing = false;
    if (kept && charts.length) charts[charts.length - 1].setScale("x", kept);
  }

  // The lists a reader opened stay open when the panel refreshes itself.
  var opened = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "monitoring") return;
    opened = Array.prototype.map.call(event.detail.target.querySelectorAll("details[id][open]"),
                                      function (details) { return details.id; });
  });

  // htmx fires htmx:load for the page itself once it is set up, and for each panel it swaps in later.
  document.addEventListener("htmx:load", function (event) {
    drawPanels(event.target);
    opened.forEach(function (id) {
      var details = document.getElementById(id);
      if (details) details.open = true;
    });
    opened = [];
  });
  // A page of its own (monitoring/page.html) without htmx: the panel is in the page from the start.
  document.addEventListener("DOMContentLoaded", function () {
    if (typeof htmx === "undefined") drawPanels(document);
  });
  PHONE.addEventListener("change", function () {
    charts.forEach(function (u) { u.setSize(size(u.root.parentElement)); });
  });

  // A rule changed below the charts (monitoring.views answers with this event): the charts redraw its bound
  // and its alerts now rather than at the next minute.
  document.body.addEventListener("monitoring-changed", function () {
    var panel = document.getElementById("monitoring");
    if (panel && panel.getAttribute("hx-get") && typeof htmx !== "undefined") {
      htmx.ajax("GET", panel.getAttribute("hx-get"), { target: "#monitoring", swap: "outerHTML" });
    }
  });
})();
