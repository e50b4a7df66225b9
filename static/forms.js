"use strict";
// The enqueue form (kinds from GET /kinds) and the processes page (GET /processes).
(function (od) {
  var kinds = [];
  var kindsLoaded = false;

  function loadKinds() {
    return od.api("GET", "/kinds").then(function (r) {
      if (!r.ok || !r.data || !Array.isArray(r.data.kinds)) return;
      kinds = r.data.kinds;
      kindsLoaded = true;
      var select = od.$("eq-kind");
      var chosen = select.value;
      select.textContent = "";
      var names = od.$("kind-names");
      names.textContent = "";
      kinds.forEach(function (k) {
        select.appendChild(od.el("option", { value: String(k.name) }, String(k.name)));
        names.appendChild(od.el("option", { value: String(k.name) }));
      });
      if (chosen) select.value = chosen;
      showDefaults();
    });
  }
  od.loadKinds = loadKinds;

  // The chosen kind's defaults as placeholders, so an empty field says what it will be.
  function showDefaults() {
    var name = od.$("eq-kind").value;
    var k = kinds.filter(function (x) { return x.name === name; })[0];
    if (!k) return;
    od.$("eq-queue").placeholder = k.queue ? String(k.queue) : "default";
    od.$("eq-max-attempts").placeholder = k.max_attempts ? String(k.max_attempts) : "default";
    od.$("eq-timeout").placeholder = k.timeout_ms ? String(k.timeout_ms / 1000) : "default";
  }
  od.$("eq-kind").addEventListener("change", showDefaults);

  function number(id, label, req, field) {
    var text = od.$(id).value.trim();
    if (!text) return true;
    var n = Number(text);
    if (!isFinite(n)) throw new Error(label + " must be a number.");
    req[field] = n;
    return true;
  }

  // The POST /jobs body from the form; throws with a message for the user.
  function request() {
    var req = { kind: od.$("eq-kind").value };
    if (!req.kind) throw new Error("Choose a kind.");
    var argsText = od.$("eq-args").value.trim();
    if (argsText) {
      try { req.args = JSON.parse(argsText); } catch (e) { throw new Error("Args is not valid JSON: " + e.message); }
    }
    var queue = od.$("eq-queue").value.trim();
    if (queue) req.queue = queue;
    number("eq-delay", "Delay", req, "delay");
    var runAt = od.$("eq-run-at").value;
    if (runAt) {
      if (req.delay !== undefined) throw new Error("Give a delay or a run-at time, not both.");
      var t = new Date(runAt);
      if (isNaN(t.getTime())) throw new Error("Run at is not a time.");
      req.run_at = t.toISOString();
    }
    number("eq-max-attempts", "Max attempts", req, "max_attempts");
    number("eq-timeout", "Timeout", req, "timeout");
    return req;
  }

  od.$("enqueue-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var msg = od.$("enqueue-msg");
    var req;
    try { req = request(); } catch (e) { od.setMsg(msg, "error", e.message); return; }
    var key = od.$("eq-idempotency").value.trim();
    var headers = key ? { "Idempotency-Key": key } : {};
    od.setMsg(msg, "info", "Sending\u2026");
    od.$("eq-submit").disabled = true;
    od.api("POST", "/jobs", req, headers).then(function (r) {
      od.$("eq-submit").disabled = false;
      if (r.ok && r.data && r.data.id) {
        od.setMsg(msg, "", "");
        od.flash("ok", (r.status === 202 ? "Created job " : "This Idempotency-Key already made job ") + r.data.id + " (" + r.data.status + ").");
        location.hash = "#/jobs/" + encodeURIComponent(r.data.id);
      } else if (r.status === 401) {
        od.setMsg(msg, "error", "Not authorised: enter the API token above.");
      } else {
        od.setMsg(msg, "error", od.errorText(r));
      }
    });
  });

  od.pages.enqueue = {
    show: function () { od.setMsg(od.$("enqueue-msg"), "", ""); },
    refresh: function () { return kindsLoaded ? null : loadKinds(); }
  };

  // ---- processes -------------------------------------------------------------------------

  function renderProcesses(list) {
    var body = od.$("processes-body");
    body.textContent = "";
    od.$("processes-count").textContent = list.length + " live";
    if (list.length === 0) body.appendChild(od.el("tr", null, od.el("td", { colSpan: 9, className: "empty" }, "no live processes")));
    list.forEach(function (p) {
      var queues = Array.isArray(p.queues) ? p.queues.join(", ") : "";
      body.appendChild(od.el("tr", { data: { id: String(p.id) } },
        od.el("td", { className: "mono c-pid-name", title: String(p.id) }, String(p.id)),
        od.el("td", { className: "mono" }, p.dyno ? String(p.dyno) : "\u2013"),
        od.el("td", { className: "mono" }, String(p.host || "")),
        od.el("td", { className: "num" }, String(p.pid)),
        od.el("td", null, String(p.role || "")),
        od.el("td", { className: "mono" }, queues),
        od.el("td", { className: "num" }, p.busy + "/" + p.concurrency),
        od.el("td", { className: "muted", title: od.fmtTime(p.started_at) }, od.ago(p.started_at)),
        od.el("td", { className: "muted", title: od.fmtTime(p.last_heartbeat_at) }, od.ago(p.last_heartbeat_at))));
    });
  }

  od.pages.processes = {
    show: function () {},
    refresh: function () {
      return od.api("GET", "/processes").then(function (r) {
        if (r.ok && r.data && Array.isArray(r.data.processes)) renderProcesses(r.data.processes);
        else if (r.status !== 401 && r.status !== 503 && r.status !== 0) od.flash("error", od.errorText(r));
      });
    }
  };
})(OD);
