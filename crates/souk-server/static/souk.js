// The few things pages do in place: show times in the viewer's zone, reveal and copy secrets,
// and refresh a part of a page while work is in progress.
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
        t.title = t.getAttribute("datetime");
      }
    });
  }
  // Checks that cost nothing are made while typing; the server checks everything again on submit.
  var PRICE = /^\d{1,10}(\.\d{1,8})?$/;
  function livePrices(root) {
    root.querySelectorAll('input[name$="_price"]').forEach(function (input) {
      var note = document.createElement("span");
      note.className = "error-message";
      note.setAttribute("aria-live", "polite");
      input.insertAdjacentElement("afterend", note);
      input.addEventListener("input", function () {
        var v = input.value.trim();
        var ok = v === "" || PRICE.test(v);
        note.textContent = ok ? "" : "A price is a number with at most 8 decimals, like 49.00";
        input.setAttribute("aria-invalid", ok ? "false" : "true");
      });
    });
  }
  function wire(root) {
    localTimes(root);
    livePrices(root);
    root.querySelectorAll("[data-reveal]").forEach(function (b) {
      b.addEventListener("click", function () {
        var s = document.getElementById(b.getAttribute("data-reveal"));
        if (s) { s.hidden = !s.hidden; b.textContent = s.hidden ? "Show" : "Hide"; }
      });
    });
    root.querySelectorAll("[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var s = document.getElementById(b.getAttribute("data-copy"));
        if (s && navigator.clipboard) { navigator.clipboard.writeText(s.textContent); b.textContent = "Copied"; }
      });
    });
  }
  function poll(el) {
    var url = el.getAttribute("data-refresh");
    setTimeout(function () {
      fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { poll(el); return; }
          var box = document.createElement("div");
          box.innerHTML = html;
          var fresh = box.firstElementChild;
          if (!fresh) { return; }
          if (!fresh.hasAttribute("data-refresh")) {
            // The work is settled: load the whole page, with what now applies (access, renewal).
            location.replace(location.pathname);
            return;
          }
          el.replaceWith(fresh);
          wire(fresh);
          poll(fresh);
        })
        .catch(function () { poll(el); });
    }, 1500);
  }
  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
    document.querySelectorAll("[data-refresh]").forEach(poll);
    var summary = document.getElementById("errors");
    if (summary) { summary.focus(); }
  });
})();
