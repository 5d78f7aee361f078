// Live refresh for pages drawn with <main data-refresh="SECONDS">: every few
// seconds the page is fetched again and its <main> swapped in. Nothing else
// on the page depends on this script; without it the page simply stays as
// drawn. It waits while the operator is choosing (a ticked box, a field with
// the focus) or the tab is hidden, and stops if the session has ended.
(function () {
  "use strict";
  var first = document.querySelector("main[data-refresh]");
  if (!first) return;
  var every = Math.max(2, parseInt(first.getAttribute("data-refresh"), 10) || 5) * 1000;

  function busy(main) {
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    var focused = document.activeElement;
    return !!focused && main.contains(focused) && /^(INPUT|SELECT|TEXTAREA)$/.test(focused.tagName);
  }

  function later() {
    window.setTimeout(tick, every);
  }

  function tick() {
    var main = document.querySelector("main[data-refresh]");
    if (!main) return;
    if (document.hidden || busy(main)) return later();
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (answer.redirected || answer.status === 401) {
          // Signed out meanwhile: reloading shows the sign-in page.
          window.location.reload();
          return null;
        }
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) {
        if (html === null) return later();
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.querySelector("main[data-refresh]");
        var now = document.querySelector("main[data-refresh]");
        if (fresh && now && !busy(now)) {
          now.replaceWith(document.adoptNode(fresh));
          if (page.title) document.title = page.title;
        }
        later();
      })
      .catch(later);
  }

  later();
})();
