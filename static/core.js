"use strict";
// The dashboard's core: DOM helpers, the API client (token, 401 prompt, outage banner), the
// confirmation dialog and the hash router. Every page registers itself in OD.pages.
//
// Everything the server sends is rendered with textContent or element properties, never
// innerHTML, so job data (args, errors, kinds, queue names) cannot inject markup.
var OD = (function () {
  var TOKEN_KEY = "onedyno.token";
  var od = { pages: {}, authNeeded: false, lastOk: null };

  od.$ = function (id) { return document.getElementById(id); };

  od.el = function (tag, props) {
    var node = document.createElement(tag);
    if (props) Object.keys(props).forEach(function (k) {
      if (k === "data") Object.keys(props.data).forEach(function (d) { node.dataset[d] = props.data[d]; });
      else node[k] = props[k];
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  };

  od.token = function () {
    try { return localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  };
  od.saveToken = function (t) {
    try { localStorage.setItem(TOKEN_KEY, t); } catch (e) { /* private mode: keep going */ }
  };

  od.fmtTime = function (s) {
    if (!s) return "";
    var d = new Date(s);
    return isNaN(d.getTime()) ? String(s) : d.toLocaleString();
  };

  // "3 s ago", "in 5 min": how far a time is from now.
  od.ago = function (s) {
    var t = new Date(s).getTime();
    if (!s || isNaN(t)) return "";
    var secs = Math.round((Date.now() - t) / 1000);
    var abs = Math.abs(secs);
    var text = abs < 90 ? abs + " s" : abs < 5400 ? Math.round(abs / 60) + " min"
      : abs < 129600 ? Math.round(abs / 3600) + " h" : Math.round(abs / 86400) + " d";
    return secs >= 0 ? text + " ago" : "in " + text;
  };

  od.fmtSecs = function (x) {
    var n = Number(x) || 0;
    return n < 10 ? n.toFixed(2) + " s" : n < 120 ? n.toFixed(1) + " s" : (n / 60).toFixed(1) + " min";
  };

  od.fmtBytes = function (n) {
    n = Number(n) || 0;
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  };

  od.shortId = function (id) {
    id = String(id);
    return id.length > 13 ? id.slice(0, 8) + "\u2026" + id.slice(-4) : id;
  };

  od.jobLink = function (id) {
    return od.el("a", { className: "id mono", href: "#/jobs/" + encodeURIComponent(id), title: String(id) }, od.shortId(id));
  };

  od.badge = function (status) {
    return od.el("span", { className: "badge " + String(status).replace(/[^a-z]/g, "") }, String(status));
  };

  // The message of an error answer: {"error": {"code", "message"}}.
  od.errorText = function (r) {
    if (r.status === 0) return "Cannot reach the server (" + (r.network || "network error") + ").";
    var e = r.data && r.data.error;
    var msg = e && e.message ? e.message : "";
    return "HTTP " + r.status + (e && e.code ? " " + e.code : "") + (msg ? ": " + msg : "");
  };

  od.setMsg = function (node, kind, text) {
    node.className = "msg" + (kind ? " " + kind : "");
    node.textContent = text || "";
  };

  // The page-wide outcome line of an action; it stays until the next action or page.
  od.flash = function (kind, text) { od.setMsg(od.$("flash"), kind, text); };

  function setConn(ok, text) {
    var c = od.$("conn");
    c.className = ok ? "ok" : "bad";
    c.textContent = text;
  }

  // Redis down (503) or the server unreachable: a banner, and the pages keep what they show.
  function outage(r) {
    var b = od.$("banner");
    var since = od.lastOk ? " Showing data from " + od.lastOk.toLocaleTimeString() + "." : "";
    b.textContent = (r.status === 0 ? "The server cannot be reached." : "Redis is unavailable.")
      + since + " Retrying every few seconds.";
    b.title = od.errorText(r);
    b.hidden = false;
    setConn(false, r.status === 0 ? "server unreachable" : "redis unavailable");
  }

  function recovered() {
    od.lastOk = new Date();
    od.$("banner").hidden = true;
    setConn(true, "live");
  }

  // One API call. Resolves to {ok, status, data}; a network failure resolves with status 0.
  od.api = function (method, path, body, extraHeaders) {
    var headers = { "Accept": "application/json" };
    var t = od.token();
    if (t) headers["Authorization"] = "Bearer " + t;
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    var init = { method: method, headers: headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        var r = { ok: res.ok, status: res.status, data: data };
        if (res.status === 401) od.askForToken(od.errorText(r));
        else if (res.status === 503) outage(r);
        else recovered();
        return r;
      });
    }, function (err) {
      var r = { ok: false, status: 0, data: null, network: String(err && err.message || err) };
      outage(r);
      return r;
    });
  };

  od.askForToken = function (serverMessage) {
    var stored = od.token();
    var text = stored === null ? "This dashboard needs the API token (the app's API_TOKEN)."
      : stored === "" ? "The server refused the request without a token (401). Enter the API token."
        : "The saved API token was refused (401). Enter it again.";
    if (serverMessage) text += " Server said: " + serverMessage;
    od.authNeeded = true;
    setConn(false, "not authorised");
    od.$("auth-msg").textContent = text;
    Array.prototype.forEach.call(document.querySelectorAll("td.empty"), function (td) {
      if (/^loading/.test(td.textContent)) td.textContent = "waiting for the API token";
    });
    if (od.$("auth").hidden) {
      od.$("auth").hidden = false;
      od.$("token").focus();
    }
  };

  // A yes/no question in a modal dialog; resolves to true for yes.
  od.confirm = function (question, yesLabel) {
    var dialog = od.$("confirm");
    od.$("confirm-text").textContent = question;
    od.$("confirm-yes").textContent = yesLabel || "Yes";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "yes");
      });
      dialog.returnValue = "";
      dialog.showModal();
    });
  };

  // An action: confirm, call, report the outcome in the flash line. Resolves to the answer, or
  // null when the user said no.
  od.act = function (question, yesLabel, method, path, describe) {
    return od.confirm(question, yesLabel).then(function (yes) {
      if (!yes) return null;
      od.flash("info", "Working\u2026");
      return od.api(method, path).then(function (r) {
        if (r.ok) od.flash("ok", describe(r.data));
        else if (r.status !== 401) od.flash("error", od.errorText(r));
        return r;
      });
    });
  };

  // "#/jobs/ID?x=1" -> {path: ["jobs", "ID"], query: {x: "1"}}.
  od.route = function () {
    var hash = location.hash.replace(/^#\/?/, "");
    var q = hash.indexOf("?");
    var path = (q < 0 ? hash : hash.slice(0, q)).split("/").filter(Boolean).map(decodeURIComponent);
    var query = {};
    new URLSearchParams(q < 0 ? "" : hash.slice(q + 1)).forEach(function (v, k) { query[k] = v; });
    return { path: path, query: query };
  };

  od.query = function (params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== undefined && params[k] !== null && params[k] !== "") {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  };

  return od;
})();
