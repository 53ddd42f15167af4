// Keeps the parts of a console page marked data-live up to date while the page is open:
// it fetches the page again every few seconds and swaps in those parts (the server escaped
// them). Forms are left alone, so nothing being typed is lost. Without this file, every page
// still works: reload it to see what changed.
(function () {
  "use strict";
  var EVERY_MS = 2000;
  var live = document.querySelectorAll("[data-live]");
  if (!live.length) {
    return;
  }
  document.querySelectorAll(".live-note").forEach(function (note) {
    note.hidden = false;
  });

  function refresh() {
    if (document.hidden) {
      return later();
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        if (!answer.ok || answer.redirected) {
          throw new Error("not refreshed: " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (part) {
          var now = fresh.getElementById(part.id);
          if (now && now.innerHTML !== part.innerHTML) {
            part.innerHTML = now.innerHTML;
          }
        });
      })
      .catch(function () {})
      .then(later);
  }

  function later() {
    window.setTimeout(refresh, EVERY_MS);
  }

  later();
})();
