// Magpie admin: small progressive enhancements. Every page works without this file;
// it adds modals, tabs, confirmations, select-all and live search. No inline script is
// allowed by the Content-Security-Policy, so all behaviour is wired here by data-*
// attributes.
(function () {
  "use strict";

  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // Dialogs: [data-open-dialog=id] opens, [data-close-dialog] closes, data-open-on-load
  // opens at load (a form re-rendered with its errors).
  function wireDialogs(root) {
    $all("[data-open-dialog]", root).forEach(function (b) {
      b.addEventListener("click", function () {
        var d = document.getElementById(b.getAttribute("data-open-dialog"));
        if (d && d.showModal) { d.showModal(); var f = d.querySelector("input:not([type=hidden]),select,textarea"); if (f) f.focus(); }
      });
    });
    $all("[data-close-dialog]", root).forEach(function (b) {
      b.addEventListener("click", function () { var d = b.closest("dialog"); if (d) d.close(); });
    });
  }

  // Tabs: [data-tabs] holds [data-tab=key] buttons and [data-panel=key] panels.
  function wireTabs() {
    $all("[data-tabs]").forEach(function (box) {
      var tabs = $all("[data-tab]", box).filter(function (t) { return t.closest("[data-tabs]") === box; });
      function show(key) {
        tabs.forEach(function (t) { t.setAttribute("aria-selected", t.getAttribute("data-tab") === key ? "true" : "false"); });
        $all("[data-panel]", box).forEach(function (p) {
          if (p.closest("[data-tabs]") === box) p.hidden = p.getAttribute("data-panel") !== key;
        });
      }
      tabs.forEach(function (t) {
        t.addEventListener("click", function () { show(t.getAttribute("data-tab")); });
      });
    });
  }

  // Confirmation before destructive form posts: form[data-confirm].
  function wireConfirm() {
    var dialog = document.getElementById("confirm-dialog");
    $all("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (form.dataset.confirmed === "1" || !dialog || !dialog.showModal) return;
        ev.preventDefault();
        dialog.querySelector("[data-confirm-text]").textContent = form.getAttribute("data-confirm");
        dialog.returnValue = "";
        dialog.onclose = function () {
          if (dialog.returnValue === "ok") { form.dataset.confirmed = "1"; form.submit(); }
        };
        dialog.showModal();
      });
    });
  }

  // Select-all on the contacts list, and the batch bar that batch actions will use.
  function wireSelection() {
    var all = document.getElementById("select-all");
    if (!all) return;
    var bar = document.querySelector("[data-batch-bar]");
    function update() {
      var boxes = $all(".row-select");
      var n = boxes.filter(function (b) { return b.checked; }).length;
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
      if (bar) { bar.hidden = n === 0; bar.querySelector("[data-batch-count]").textContent = n + " selected"; }
    }
    all.addEventListener("change", function () {
      $all(".row-select").forEach(function (b) { b.checked = all.checked; });
      update();
    });
    document.addEventListener("change", function (ev) { if (ev.target.classList && ev.target.classList.contains("row-select")) update(); });
  }

  // Avatars: hide a broken image so the initials underneath show.
  function wireAvatars(root) {
    $all("img[data-avatar]", root).forEach(function (img) {
      function hide() { img.style.display = "none"; }
      if (img.complete && img.naturalWidth === 0) hide();
      img.addEventListener("error", hide);
    });
  }

  // Note forms: the date-time only matters for calls and meetings.
  function wireNotes() {
    $all("[data-note-type]").forEach(function (sel) {
      var form = sel.closest("form");
      var when = form && form.querySelector("[data-note-when]");
      function update() { if (when) when.hidden = !(sel.value === "call" || sel.value === "meeting"); }
      sel.addEventListener("change", update);
      update();
    });
  }

  // Field form: show the property inputs of the chosen type.
  function wireFieldType() {
    var t = document.querySelector("[data-field-type]");
    if (!t) return;
    function update() {
      $all("[data-props]").forEach(function (p) { p.hidden = p.getAttribute("data-props").split(" ").indexOf(t.value) < 0; });
    }
    t.addEventListener("change", update);
    update();
  }

  // Selects that apply themselves (page size).
  function wireAutosubmit() {
    $all("[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
  }

  // Search as you type: fetch the list page for the query and swap the results in,
  // keeping the URL shareable.
  function wireLiveSearch() {
    var input = document.querySelector("[data-live-search]");
    var results = document.getElementById("results");
    if (!input || !results || !window.fetch || !window.DOMParser) return;
    var timer = null, seq = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var form = input.form;
        var params = new URLSearchParams(new FormData(form));
        if (!input.value) params.delete("q");
        var url = form.action + (params.toString() ? "?" + params.toString() : "");
        var mine = ++seq;
        fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) { return r.text(); }).then(function (html) {
          if (mine !== seq) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("results");
          var total = doc.getElementById("total");
          if (!fresh) return;
          results.replaceWith(fresh);
          results = fresh;
          if (total) document.getElementById("total").textContent = total.textContent;
          history.replaceState(null, "", url);
          wireSelection();
          wireAvatars(fresh);
          wireAutosubmit();
        });
      }, 350);
    });
  }

  function wireFlash() {
    $all("[data-dismiss]").forEach(function (b) {
      b.addEventListener("click", function () { var f = b.closest("[data-flash]"); if (f) f.remove(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireDialogs(document);
    wireTabs();
    wireConfirm();
    wireSelection();
    wireAvatars(document);
    wireNotes();
    wireFieldType();
    wireAutosubmit();
    wireLiveSearch();
    wireFlash();
    $all("dialog[data-open-on-load]").forEach(function (d) { if (d.showModal) d.showModal(); });
  });
})();
