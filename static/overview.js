"use strict";
// Overview: counters, Redis memory, the per-minute chart and the queue table, from GET /queues
// and GET /stats/minutes.
(function (od) {
  var SVG = "http://www.w3.org/2000/svg";
  var MINUTES_EVERY_MS = 10000;
  var minutesLoaded = 0;

  function setCounter(id, n, cls) {
    var c = od.$(id);
    c.querySelector(".n").textContent = n === undefined || n === null ? "\u2013" : String(n);
    c.classList.toggle("alert", cls === "alert");
    c.classList.toggle("warn", cls === "warn");
  }

  function sum(list, field) {
    return list.reduce(function (a, q) { return a + (Number(q[field]) || 0); }, 0);
  }

  function renderCounters(stats) {
    var qs = Array.isArray(stats.queues) ? stats.queues : [];
    var counts = stats.counts || {};
    var pick = function (name) { return counts[name] !== undefined ? counts[name] : stats[name]; };
    var running = pick("running");
    if (running === undefined) running = sum(qs, "running");
    setCounter("c-queued", sum(qs, "depth"));
    setCounter("c-running", running);
    setCounter("c-scheduled", pick("scheduled"));
    setCounter("c-retrying", pick("retrying"), pick("retrying") > 0 ? "warn" : "");
    setCounter("c-dead", pick("dead"), pick("dead") > 0 ? "alert" : "");
    setCounter("c-processes", stats.processes, stats.processes === 0 ? "warn" : "");
  }

  function renderMemory(redis) {
    var meter = od.$("mem-meter");
    var text = od.$("mem-text");
    meter.hidden = !(redis && Number(redis.max_bytes) > 0);
    if (!redis) { text.textContent = "unknown (INFO failed)"; return; }
    var used = Number(redis.used_bytes) || 0;
    var max = Number(redis.max_bytes) || 0;
    if (max > 0) {
      meter.max = max; meter.value = used;
      meter.low = max * 0.7; meter.high = max * 0.9; meter.optimum = 0;
      text.textContent = od.fmtBytes(used) + " of " + od.fmtBytes(max) + " (" + Math.round(100 * used / max) + "%)"
        + (redis.policy ? ", " + redis.policy : "");
    } else {
      text.textContent = od.fmtBytes(used) + " used, no maxmemory limit";
    }
  }

  function renderQueues(stats) {
    var body = od.$("queues-body");
    body.textContent = "";
    var qs = Array.isArray(stats.queues) ? stats.queues : [];
    if (qs.length === 0) body.appendChild(od.el("tr", null, od.el("td", { colSpan: 5, className: "empty" }, "no queues")));
    qs.forEach(function (q) {
      var served = q.served !== false;
      var link = od.el("a", { href: "#/jobs" + od.query({ status: "queued", queue: q.name }) }, String(q.name));
      body.appendChild(od.el("tr", { className: served ? "" : "unserved", data: { queue: String(q.name) } },
        od.el("td", { className: "mono c-name" }, link),
        od.el("td", { className: "num c-depth" }, String(q.depth)),
        od.el("td", { className: "num c-latency" }, od.fmtSecs(q.latency)),
        od.el("td", { className: "num c-running" }, String(q.running)),
        od.el("td", { className: "c-served", title: served ? "" : "waiting jobs and no live process works this queue" }, served ? "yes" : "no")));
    });
    od.$("queues-unserved").hidden = qs.every(function (q) { return q.served !== false; });
    var omitted = od.$("queues-omitted");
    omitted.hidden = !(stats.queues_omitted > 0);
    omitted.textContent = stats.queues_omitted + " more queues not listed (the shallowest).";
  }

  function svg(tag, attrs, title) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (title) {
      var t = document.createElementNS(SVG, "title");
      t.textContent = title;
      node.appendChild(t);
    }
    return node;
  }

  // Bars per minute, processed behind failed, scaled to the busiest minute.
  function renderChart(minutes) {
    var chart = od.$("chart");
    var w = 600, h = 150, n = Math.max(minutes.length, 1), slot = w / n;
    var top = Math.max(1, Math.max.apply(null, minutes.map(function (m) { return Number(m.processed) || 0; })));
    var root = svg("svg", { viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none", role: "img",
      "aria-label": "processed and failed jobs per minute over the last hour" });
    [0.5, 1].forEach(function (f) {
      root.appendChild(svg("line", { x1: 0, x2: w, y1: h - f * (h - 4), y2: h - f * (h - 4), "class": "grid" }));
    });
    var processed = 0, failed = 0;
    minutes.forEach(function (m, i) {
      var p = Number(m.processed) || 0, f = Number(m.failed) || 0;
      processed += p; failed += f;
      var label = new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ": " + p + " processed, " + f + " failed";
      var x = i * slot + slot * 0.1, bw = slot * 0.8;
      var ph = p / top * (h - 4), fh = f / top * (h - 4);
      root.appendChild(svg("rect", { x: x, y: h - ph, width: bw, height: ph, "class": "processed" }, label));
      if (f > 0) root.appendChild(svg("rect", { x: x, y: h - fh, width: bw, height: fh, "class": "failed" }, label));
    });
    chart.textContent = "";
    chart.appendChild(od.el("div", { className: "chart-top muted" }, top + " / min"));
    chart.appendChild(root);
    chart.appendChild(od.el("div", { className: "chart-axis muted" }, od.el("span", null, "60 min ago"), od.el("span", null, "now")));
    chart.dataset.processed = String(processed);
    chart.dataset.failed = String(failed);
    od.$("sum-processed").textContent = String(processed);
    od.$("sum-failed").textContent = String(failed);
  }

  function loadMinutes() {
    minutesLoaded = Date.now();
    return od.api("GET", "/stats/minutes").then(function (r) {
      if (r.ok && r.data && Array.isArray(r.data.minutes)) renderChart(r.data.minutes);
      else if (r.status !== 401 && r.status !== 503 && r.status !== 0) {
        od.$("chart").textContent = "Per-minute counts unavailable: " + od.errorText(r);
      }
    });
  }

  od.pages.overview = {
    show: function () { minutesLoaded = 0; },
    refresh: function () {
      var chart = Date.now() - minutesLoaded >= MINUTES_EVERY_MS ? loadMinutes() : null;
      var queues = od.api("GET", "/queues").then(function (r) {
        if (!r.ok || !r.data) return;
        renderCounters(r.data);
        renderMemory(r.data.redis);
        renderQueues(r.data);
        od.$("updated").textContent = "updated " + new Date().toLocaleTimeString();
      });
      return Promise.all([chart, queues]);
    }
  };
})(OD);
