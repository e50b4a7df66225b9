"use strict";
// Routing and polling: the hash names the page (#/, #/jobs?status=dead, #/jobs/ID, #/processes,
// #/enqueue); the page shown is refreshed every POLL_MS, and a refresh never clears what is shown
// when it fails, so an outage leaves the last data on screen under the banner.
(function (od) {
  var POLL_MS = 2000;
  var timer = null;
  var current = null;

  function pageFor(route) {
    var p = route.path;
    if (p[0] === "jobs" && p.length > 1) return "job";
    if (p[0] === "jobs") return "list";
    if (p[0] === "processes") return "processes";
    if (p[0] === "enqueue") return "enqueue";
    return "overview";
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = od.authNeeded ? null : setTimeout(od.refreshPage, POLL_MS);
  }

  // Refreshes the page shown now, then polls again; a hidden tab only waits to be seen again.
  od.refreshPage = function () {
    if (timer) { clearTimeout(timer); timer = null; }
    if (od.authNeeded || !current) return;
    if (document.hidden) { schedule(); return; }
    Promise.resolve(od.pages[current].refresh()).then(schedule, schedule);
  };

  document.addEventListener("visibilitychange", function () { if (!document.hidden) od.refreshPage(); });

  function navigate() {
    var route = od.route();
    var name = pageFor(route);
    var previous = current;
    current = name;
    Array.prototype.forEach.call(document.querySelectorAll(".page"), function (node) {
      node.hidden = node.id !== "page-" + name;
    });
    Array.prototype.forEach.call(document.querySelectorAll("#nav a"), function (a) {
      a.classList.toggle("current", a.dataset.page === name || (name === "job" && a.dataset.page === "list"));
    });
    // The outcome of an action that led here (e.g. the job just created) stays; others go.
    if (previous !== null && !(name === "job" && previous === "enqueue") && !(previous === "job" && name === "list")) {
      od.flash("", "");
    }
    od.pages[name].show(route);
    document.title = "onedyno \u00b7 " + (name === "job" ? "job " + od.shortId(route.path[1]) : name);
    od.refreshPage();
  }

  od.$("change-token").addEventListener("click", function () {
    var auth = od.$("auth");
    if (!auth.hidden) { auth.hidden = true; return; }
    od.$("auth-msg").textContent = "";
    od.$("token").value = od.token() || "";
    auth.hidden = false;
    od.$("token").focus();
  });

  od.$("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    od.saveToken(od.$("token").value.trim());
    od.authNeeded = false;
    od.$("auth").hidden = true;
    od.$("auth-msg").textContent = "";
    od.loadKinds();
    od.refreshPage();
  });

  window.addEventListener("hashchange", navigate);
  navigate();
  od.loadKinds();
})(OD);
