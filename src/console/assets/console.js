// Sentinel console: live inbox, feed and countdowns over Server-Sent Events.
// Untrusted text is only ever set with textContent; HTML comes from the server's own
// escaped templates (inbox cards, header numbers).
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  var skew = 0;

  function fmt(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h > 0) return h + "h " + (m < 10 ? "0" : "") + m + "m";
    if (m > 0) return m + "m " + (sec < 10 ? "0" : "") + sec + "s";
    return sec + "s";
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("time.countdown").forEach(function (t) {
      var left = Number(t.getAttribute("data-deadline")) - now;
      t.textContent = left > 0 ? fmt(left) + " left" : "deadline passed";
      t.classList.toggle("late", left <= 0);
    });
  }
  var first = document.querySelector("time.countdown");
  if (first) skew = Number(first.getAttribute("data-now")) - Date.now();
  setInterval(tick, 1000);
  tick();

  var glanceTimer = null;
  function refreshGlance() {
    if (glanceTimer) return;
    glanceTimer = setTimeout(function () {
      glanceTimer = null;
      fetch("/console/glance", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var g = document.getElementById("glance");
          if (html && g) g.outerHTML = html;
        });
    }, 300);
  }

  function emptyNote() {
    var cards = document.getElementById("cards");
    var note = document.getElementById("inbox-empty");
    if (cards && note) note.hidden = cards.children.length > 0;
  }

  // Decided intents never come back, even when a card fetch started before the decision.
  var decided = {};

  function addCard(id) {
    var cards = document.getElementById("cards");
    if (!cards || decided[id] || document.getElementById("card-" + id)) return;
    fetch("/console/intents/" + encodeURIComponent(id) + "/card", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || decided[id] || document.getElementById("card-" + id)) return;
        var box = document.createElement("div");
        box.innerHTML = html;
        var card = box.firstElementChild;
        if (card && card.querySelector(".state.pending")) {
          cards.insertBefore(card, cards.firstChild);
          emptyNote();
          tick();
        }
      });
  }

  function removeCard(id) {
    decided[id] = true;
    var card = document.getElementById("card-" + id);
    if (card) card.remove();
    emptyNote();
  }

  function filterValue(id) {
    var el = document.getElementById(id);
    return el ? el.value.trim() : "";
  }

  function visible(li) {
    var state = filterValue("f-state"), agent = filterValue("f-agent");
    var module = filterValue("f-module"), id = filterValue("f-id");
    return (!state || li.dataset.state === state) &&
      (!agent || li.dataset.agent === agent) &&
      (!module || li.dataset.module === module) &&
      (!id || li.dataset.intent.indexOf(id) !== -1);
  }

  function applyFilters() {
    document.querySelectorAll("#feed li").forEach(function (li) { li.hidden = !visible(li); });
  }
  ["f-state", "f-agent", "f-module", "f-id"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) el.addEventListener("input", applyFilters);
  });

  function addFeedLine(ev) {
    var feed = document.getElementById("feed");
    if (!feed) return;
    var li = document.createElement("li");
    li.dataset.state = ev.state;
    li.dataset.agent = ev.agent;
    li.dataset.module = ev.module;
    li.dataset.intent = ev.intent_id;
    li.className = "feed-line " + ev.kind;
    var when = new Date(ev.at).toLocaleTimeString();
    var link = document.createElement("a");
    link.href = "/console/intents/" + encodeURIComponent(ev.intent_id);
    link.textContent = ev.intent_id.slice(-8);
    li.append(when + " ", link, " " + ev.state + " · " + ev.agent + " · " + ev.module + " · " + ev.line);
    li.hidden = !visible(li);
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 500) feed.lastChild.remove();
  }

  if (page !== "inbox" && page !== "intent") return;
  var source = new EventSource("/console/events");
  source.addEventListener("intent", function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    addFeedLine(ev);
    if (page === "intent") {
      var here = document.getElementById("intent-page");
      if (here && here.getAttribute("data-intent") === ev.intent_id) location.reload();
      return;
    }
    if (ev.kind === "transition") {
      if (ev.state === "PENDING_APPROVAL") addCard(ev.intent_id);
      else if (ev.terminal) removeCard(ev.intent_id);
      refreshGlance();
    }
  });
  source.addEventListener("lagged", function () { location.reload(); });
  document.body.setAttribute("data-live", "1");
  source.addEventListener("open", function () { document.body.setAttribute("data-live", "open"); });
})();
