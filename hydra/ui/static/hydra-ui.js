// hydra ui: live updates without a build step. Every element with data-refresh="URL" is
// replaced by the HTML the URL returns, while the tab is visible. Where the server says
// how many notifications it has heard (X-Hydra-Changes: PostgreSQL's LISTEN), the next
// request names that count and the server answers when the next one comes (or after a
// couple of seconds); elsewhere every data-every milliseconds (default 1000). An execution
// page stops once the fragment says it ended.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-every") || "1000", 10);
    var seen = null;
    function next(delay) { setTimeout(tick, delay); }
    function tick() {
      if (!el.hasAttribute("data-refresh")) return;
      // Not while hidden, nor while the user is typing in a form inside it.
      if (document.hidden ||
          (el.contains(document.activeElement) && document.activeElement.tagName === "INPUT")) {
        return next(every);
      }
      var target = seen === null ? url : url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + seen;
      var longPoll = false;
      fetch(target, { headers: { "X-Requested-With": "hydra-ui" }, credentials: "same-origin" })
        .then(function (r) {
          var count = r.headers.get("X-Hydra-Changes");
          if (count !== null) { seen = count; longPoll = true; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== el.innerHTML) el.innerHTML = html;
          var done = el.querySelector("[data-terminal='yes']");
          if (done) el.removeAttribute("data-refresh");
        })
        .catch(function () { longPoll = false; /* the server restarts: try again */ })
        .then(function () { next(longPoll ? 0 : every); });
    }
    next(every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(poll);
  });
})();
