// hydra ui: live updates without a build step. Every element with data-refresh="URL" is
// replaced by the HTML the URL returns, every data-every milliseconds (default 1000),
// while the tab is visible. An execution page stops once the fragment says it ended.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-every") || "1000", 10);
    var busy = false;
    function tick() {
      if (busy || document.hidden || !el.hasAttribute("data-refresh")) return;
      // Not while the user is typing in a form inside it (a message being written).
      if (el.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
      busy = true;
      fetch(url, { headers: { "X-Requested-With": "hydra-ui" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== el.innerHTML) el.innerHTML = html;
          var done = el.querySelector("[data-terminal='yes']");
          if (done) el.removeAttribute("data-refresh");
        })
        .catch(function () { /* the server restarts: try again next tick */ })
        .then(function () { busy = false; });
    }
    setInterval(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(poll);
  });
})();
