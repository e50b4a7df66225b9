"use strict";
// Job lists (GET /jobs?status=..., paged by cursor, filtered by queue and kind) and the job page
// (GET /jobs/{id}), with retry, retry all dead, cancel and delete.
(function (od) {
  var STATUSES = ["queued", "running", "scheduled", "retrying", "dead", "succeeded", "cancelled"];
  var ACTIVE = ["queued", "scheduled", "retrying", "running"];
  // Which time a list shows for each state, and what to call it.
  var TIME = {
    queued: ["run_at", "ready since"], running: ["started_at", "started"], scheduled: ["run_at", "due"],
    retrying: ["run_at", "next attempt"], dead: ["finished_at", "died"], succeeded: ["finished_at", "finished"],
    cancelled: ["finished_at", "cancelled"]
  };
  var PAGE = 50;
  var list = { status: "running", queue: "", kind: "", cursor: "", limit: PAGE };
  var shownJob = null;
  // The cursors of the pages before this one, for Previous (a cursor only leads forward).
  var trail = [];

  // A fraction 0..1 from what a handler reported: a number (0..1 or a percentage), or an object
  // with completed/steps, done/total, current/total or percent. null when it says no fraction.
  od.progressFraction = function (p) {
    if (typeof p === "number") return p <= 1 ? Math.max(0, p) : Math.min(1, p / 100);
    if (!p || typeof p !== "object") return null;
    var pairs = [["completed", "steps"], ["done", "total"], ["current", "total"], ["completed", "total"]];
    for (var i = 0; i < pairs.length; i++) {
      var a = Number(p[pairs[i][0]]), b = Number(p[pairs[i][1]]);
      if (isFinite(a) && isFinite(b) && b > 0) return Math.max(0, Math.min(1, a / b));
    }
    if (isFinite(Number(p.percent))) return Math.max(0, Math.min(1, Number(p.percent) / 100));
    return null;
  };

  function progressNode(p) {
    var f = od.progressFraction(p);
    var text = JSON.stringify(p);
    if (f === null) return od.el("span", { className: "mono" }, text);
    return od.el("span", { className: "progress-cell", title: text },
      od.el("progress", { max: 1, value: f }), od.el("span", { className: "mono" }, Math.round(f * 100) + "%"));
  }

  function rowActions(job) {
    var cell = od.el("td", { className: "c-act" });
    var add = function (label, cls, run) {
      var b = od.el("button", { type: "button", className: "small " + cls }, label);
      b.addEventListener("click", run);
      cell.appendChild(b);
    };
    if (job.status === "dead" || job.status === "cancelled") add("Retry", "", function () { retry(job.id); });
    if (ACTIVE.indexOf(job.status) >= 0) add("Cancel", "danger", function () { cancel(job.id); });
    if (job.status === "dead") add("Delete", "danger", function () { remove(job.id, false); });
    return cell;
  }

  function renderList(data) {
    var body = od.$("jobs-body");
    body.textContent = "";
    var jobs = Array.isArray(data.jobs) ? data.jobs : [];
    var time = TIME[list.status] || ["created_at", "created"];
    od.$("time-head").textContent = time[1];
    if (jobs.length === 0) {
      body.appendChild(od.el("tr", null, od.el("td", { colSpan: 7, className: "empty" }, "no " + list.status + " jobs")));
    }
    jobs.forEach(function (job) {
      var err = job.last_error ? String(job.last_error.message) : "";
      var detail = job.progress !== null && job.progress !== undefined && job.status === "running"
        ? od.el("td", { className: "c-detail" }, progressNode(job.progress))
        : od.el("td", { className: "c-detail err", title: err }, err);
      body.appendChild(od.el("tr", { data: { id: String(job.id) } },
        od.el("td", { className: "c-id" }, od.jobLink(job.id)),
        od.el("td", { className: "mono c-kind" }, String(job.kind)),
        od.el("td", { className: "mono c-queue" }, String(job.queue)),
        od.el("td", { className: "num c-tries" }, job.attempts + "/" + job.max_attempts),
        od.el("td", { className: "c-time muted", title: od.fmtTime(job[time[0]]) }, od.ago(job[time[0]])),
        detail, rowActions(job)));
    });
    var next = od.$("page-next");
    next.disabled = !data.next_cursor;
    next.dataset.cursor = data.next_cursor || "";
    od.$("page-first").disabled = !list.cursor;
    od.$("page-prev").disabled = trail.length === 0 || !list.cursor;
    od.$("page-info").textContent = jobs.length + " shown" + (list.cursor ? " (later page)" : "");
  }

  function listHash(changes) {
    var p = { status: list.status, queue: list.queue, kind: list.kind, cursor: list.cursor,
      limit: list.limit === PAGE ? "" : list.limit };
    Object.keys(changes || {}).forEach(function (k) { p[k] = changes[k]; });
    return "#/jobs" + od.query(p);
  }

  function renderTabs() {
    var tabs = od.$("status-tabs");
    tabs.textContent = "";
    STATUSES.forEach(function (s) {
      tabs.appendChild(od.el("a", { href: listHash({ status: s, cursor: "" }), className: s === list.status ? "current" : "" }, s));
    });
  }

  function retry(id) {
    return od.act("Run job " + id + " again?", "Retry", "POST", "/jobs/" + encodeURIComponent(id) + "/retry",
      function (job) { return "Job " + id + " queued again (" + job.status + ")."; }).then(refreshNow);
  }

  function cancel(id) {
    return od.act("Cancel job " + id + "? A running job is stopped.", "Cancel job", "DELETE", "/jobs/" + encodeURIComponent(id),
      function (job) { return "Job " + id + " is " + job.status + "."; }).then(refreshNow);
  }

  function remove(id, leavePage) {
    return od.act("Delete dead job " + id + "? Its record and errors are gone for good.", "Delete", "DELETE",
      "/jobs/" + encodeURIComponent(id), function () { return "Job " + id + " deleted."; }).then(function (r) {
      if (r && r.ok && leavePage) location.hash = "#/jobs?status=dead";
      else refreshNow();
    });
  }

  function refreshNow() { od.refreshPage(); }

  od.$("retry-all").addEventListener("click", function () {
    var scope = (list.queue ? " in queue " + list.queue : "") + (list.kind ? " of kind " + list.kind : "");
    od.act("Retry every dead job" + scope + "? (up to 1000 per press)", "Retry all", "POST",
      "/jobs/retry" + od.query({ status: "dead", queue: list.queue, kind: list.kind }),
      function (d) {
        return "Retried " + d.retried + " dead jobs" + (d.remaining > 0 ? "; " + d.remaining + " remain: press again." : ".");
      }).then(refreshNow);
  });

  od.$("filter-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    location.hash = listHash({ queue: od.$("f-queue").value.trim(), kind: od.$("f-kind").value.trim(), cursor: "" });
  });
  od.$("page-first").addEventListener("click", function () { trail = []; location.hash = listHash({ cursor: "" }); });
  od.$("page-prev").addEventListener("click", function () {
    if (trail.length) location.hash = listHash({ cursor: trail.pop() });
  });
  od.$("page-next").addEventListener("click", function () {
    var c = od.$("page-next").dataset.cursor;
    if (!c) return;
    trail.push(list.cursor);
    location.hash = listHash({ cursor: c });
  });

  od.pages.list = {
    show: function (route) {
      var q = route.query;
      var limit = Math.floor(Number(q.limit));
      var previous = list;
      list = {
        status: STATUSES.indexOf(q.status) >= 0 ? q.status : "running", queue: q.queue || "", kind: q.kind || "",
        cursor: q.cursor || "", limit: limit >= 1 && limit <= 200 ? limit : PAGE
      };
      var same = previous.status === list.status && previous.queue === list.queue && previous.kind === list.kind && previous.limit === list.limit;
      if (!same || !list.cursor) trail = [];
      od.$("f-queue").value = list.queue;
      od.$("f-kind").value = list.kind;
      od.$("retry-all").hidden = list.status !== "dead";
      od.$("jobs-body").textContent = "";
      renderTabs();
    },
    refresh: function () {
      var path = "/jobs" + od.query({ status: list.status, queue: list.queue, kind: list.kind, cursor: list.cursor, limit: list.limit });
      return od.api("GET", path).then(function (r) {
        if (r.ok && r.data) renderList(r.data);
        else if (r.status !== 401 && r.status !== 503 && r.status !== 0) od.flash("error", od.errorText(r));
      });
    }
  };

  // ---- the job page ----------------------------------------------------------------------

  function fact(dl, name, value) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(od.el("dt", null, name));
    dl.appendChild(od.el("dd", { className: "f-" + name.replace(/[^a-z]/g, "") }, value));
  }

  function timing(job) {
    var start = new Date(job.started_at).getTime();
    if (!job.started_at || isNaN(start)) return "";
    var end = job.finished_at ? new Date(job.finished_at).getTime() : Date.now();
    return od.fmtSecs((end - start) / 1000) + (job.finished_at ? "" : " so far");
  }

  function renderJob(job) {
    shownJob = job;
    od.$("job-id").textContent = String(job.id);
    var badge = od.$("job-status");
    badge.textContent = String(job.status);
    badge.className = "badge " + String(job.status).replace(/[^a-z]/g, "");
    od.$("job-retry").hidden = !(job.status === "dead" || job.status === "cancelled");
    od.$("job-cancel").hidden = ACTIVE.indexOf(job.status) < 0;
    od.$("job-delete").hidden = job.status !== "dead";
    var f = job.progress === null || job.progress === undefined ? null : od.progressFraction(job.progress);
    od.$("job-progress").hidden = job.progress === null || job.progress === undefined;
    var bar = od.$("job-progress-bar");
    if (f === null) bar.removeAttribute("value"); else bar.value = f;
    od.$("job-progress-text").textContent = (f === null ? "" : Math.round(f * 100) + "% ") + JSON.stringify(job.progress);
    var dl = od.$("job-facts");
    dl.textContent = "";
    fact(dl, "kind", String(job.kind));
    fact(dl, "queue", String(job.queue));
    fact(dl, "attempts", job.attempts + " started; dead after " + job.max_attempts + " failures");
    fact(dl, "timeout", job.timeout === null ? "default" : job.timeout + " s");
    fact(dl, "created", od.fmtTime(job.created_at));
    fact(dl, "run at", od.fmtTime(job.run_at) + (job.run_at ? " (" + od.ago(job.run_at) + ")" : ""));
    fact(dl, "started", od.fmtTime(job.started_at));
    fact(dl, "finished", od.fmtTime(job.finished_at));
    fact(dl, "duration", timing(job));
    od.$("job-args").textContent = JSON.stringify(job.args, null, 2);
    od.$("job-result-section").hidden = job.result === null || job.result === undefined;
    od.$("job-result").textContent = JSON.stringify(job.result, null, 2);
    var errors = Array.isArray(job.errors) ? job.errors : [];
    od.$("job-errors-count").textContent = errors.length ? errors.length + " kept, newest last" : "none";
    var ol = od.$("job-errors");
    ol.textContent = "";
    errors.forEach(function (e) {
      ol.appendChild(od.el("li", null,
        od.el("span", { className: "muted" }, "attempt " + e.attempt + " \u00b7 " + od.fmtTime(e.at)),
        od.el("pre", null, String(e.message))));
    });
  }

  od.$("job-retry").addEventListener("click", function () { if (shownJob) retry(shownJob.id); });
  od.$("job-cancel").addEventListener("click", function () { if (shownJob) cancel(shownJob.id); });
  od.$("job-delete").addEventListener("click", function () { if (shownJob) remove(shownJob.id, true); });

  var jobId = null;
  od.pages.job = {
    show: function (route) {
      jobId = route.path[1];
      shownJob = null;
      od.$("job-id").textContent = jobId;
      od.$("job-status").textContent = "loading";
      od.$("job-facts").textContent = "";
    },
    refresh: function () {
      var id = jobId;
      return od.api("GET", "/jobs/" + encodeURIComponent(id)).then(function (r) {
        if (id !== jobId) return;
        if (r.ok && r.data) renderJob(r.data);
        else if (r.status === 404) {
          od.$("job-status").textContent = "not found";
          od.flash("error", od.errorText(r));
        }
      });
    }
  };
})(OD);
