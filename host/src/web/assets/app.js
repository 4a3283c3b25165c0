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
      b.addEventListener("click", function (ev) {
        var d = document.getElementById(b.getAttribute("data-open-dialog"));
        if (d && d.showModal) {
          // A link opens the dialog instead of its no-script page.
          ev.preventDefault();
          var menu = b.closest("details[open]");
          if (menu) menu.open = false;
          d.showModal();
          var f = d.querySelector("input:not([type=hidden]),select,textarea"); if (f) f.focus();
        }
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
          wireBatchExport(); // issue 6
          var exportSearch = document.querySelector("[data-export-search]"); if (exportSearch) exportSearch.value = input.value; // issue 6
          wireAvatars(fresh);
          wireAutosubmit();
        });
      }, 350);
    });
  }

  // Merge modal on the contact page: search as you type (JSON, with the CSRF token),
  // pick a contact, confirm. Results are built with textContent, never HTML.
  function wireMerge() {
    var dialog = document.getElementById("merge-dialog");
    if (!dialog || !window.fetch) return;
    var form = dialog.querySelector("form");
    var input = dialog.querySelector("[data-merge-search]");
    var list = dialog.querySelector("[data-merge-results]");
    var status = dialog.querySelector("[data-merge-status]");
    var other = dialog.querySelector("[data-merge-other]");
    var csrf = form.querySelector("input[name=_csrf]").value;
    var url = dialog.getAttribute("data-merge-url");
    var hint = status.textContent;
    var timer = null, seq = 0;
    function step(name) {
      $all("[data-merge-step]", dialog).forEach(function (s) { s.hidden = s.getAttribute("data-merge-step") !== name; });
    }
    function pick(r) {
      other.value = String(r.id);
      dialog.querySelector("[data-merge-other-name]").textContent = r.name;
      dialog.querySelector("[data-merge-other-email]").textContent = r.email || "";
      dialog.querySelector("[data-merge-other-id]").textContent = "#" + r.id;
      step("confirm");
      var ok = document.getElementById("merge-confirm"); if (ok) ok.focus();
    }
    function el(tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text) e.textContent = text;
      return e;
    }
    function render(results) {
      list.textContent = "";
      results.forEach(function (r) {
        var b = el("button", "pick");
        b.type = "button";
        b.setAttribute("data-contact-id", String(r.id));
        b.appendChild(el("bdi", "pick-name", r.name));
        if (r.anonymous) { b.appendChild(document.createTextNode(" ")); b.appendChild(el("span", "badge badge-soft", "anonymous")); }
        if (r.email) b.appendChild(el("bdi", "pick-detail", r.email));
        if (r.detail) b.appendChild(el("bdi", "pick-detail muted", r.detail));
        b.addEventListener("click", function () { pick(r); });
        var li = el("li");
        li.appendChild(b);
        list.appendChild(li);
      });
    }
    function search() {
      var q = input.value.trim();
      var mine = ++seq;
      if (!q) { render([]); status.textContent = hint; return; }
      status.textContent = "Searching…";
      fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrf } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (data) {
          if (mine !== seq) return;
          var results = data.results || [];
          render(results);
          if (data.error) status.textContent = "Invalid search: " + data.error;
          else status.textContent = results.length ? (results.length === 1 ? "1 contact found. Pick it to continue." : results.length + " contacts found. Pick one to continue.") : "No other contact matches.";
        })
        .catch(function () { if (mine === seq) status.textContent = "The search failed; reload the page and try again."; });
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 250); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(timer); search(); }
    });
    dialog.querySelector("[data-merge-back]").addEventListener("click", function () { other.value = ""; step("search"); input.focus(); });
    form.addEventListener("submit", function (ev) { if (!other.value) ev.preventDefault(); });
    dialog.addEventListener("close", function () { other.value = ""; step("search"); });
  }

  // Repeating rows (the form editor's fields): [data-add-row=template id] appends a copy
  // of the template to the table's [data-rows]; [data-remove-row] removes its row.
  function wireRows() {
    $all("[data-add-row]").forEach(function (b) {
      var tpl = document.getElementById(b.getAttribute("data-add-row"));
      var form = b.closest("form");
      var body = form && form.querySelector("[data-rows]");
      if (!tpl || !body || !tpl.content) return;
      b.hidden = false;
      b.addEventListener("click", function () {
        body.appendChild(document.importNode(tpl.content, true));
        var rows = body.querySelectorAll("[data-row]");
        var first = rows[rows.length - 1].querySelector("input");
        if (first) first.focus();
      });
      $all("[data-remove-row]", body).forEach(function (r) { r.hidden = false; });
      body.addEventListener("click", function (ev) {
        var r = ev.target.closest && ev.target.closest("[data-remove-row]");
        if (r) { var row = r.closest("[data-row]"); if (row) row.remove(); }
      });
    });
  }

  // Copy buttons: [data-copy=id] copies that input's or textarea's value (hidden without script).
  function wireCopy() {
    $all("[data-copy]").forEach(function (b) {
      var target = document.getElementById(b.getAttribute("data-copy"));
      if (!target) return;
      var label = b.textContent;
      b.hidden = false;
      b.addEventListener("click", function () {
        function done() { b.textContent = "Copied"; setTimeout(function () { b.textContent = label; }, 1500); }
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(target.value).then(done, function () { target.select(); });
        } else {
          target.select();
          try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: the user can copy */ }
        }
      });
    });
  }

  function wireFlash() {
    $all("[data-dismiss]").forEach(function (b) {
      b.addEventListener("click", function () { var f = b.closest("[data-flash]"); if (f) f.remove(); });
    });
  }

  // ---- Issue 6: the import wizard and exports ----

  // Mapping step: the new-field inputs show only for "Create a new field…".
  function wireMapping() {
    $all("[data-mapping-select]").forEach(function (sel) {
      var box = sel.parentNode.querySelector("[data-new-field]");
      if (!box) return;
      function update() { box.hidden = sel.value !== "__create__"; }
      sel.addEventListener("change", update);
      update();
    });
  }

  // Progress page: polls the import's JSON (with the CSRF token) and fills the bar, the
  // counts and the buttons; stops polling when the import no longer runs.
  function wireImportProgress() {
    var box = document.querySelector("[data-import-progress]");
    if (!box || !window.fetch) return;
    var url = box.getAttribute("data-import-progress");
    var csrf = document.querySelector("input[name=_csrf]");
    var token = csrf ? csrf.value : "";
    var bar = document.getElementById("import-bar");
    var status = document.getElementById("import-status");
    function show(el, on) { if (el) el.hidden = !on; }
    function apply(imp) {
      var d = imp.display || {};
      $all("[data-p]", box).forEach(function (el) {
        var k = el.getAttribute("data-p");
        if (d[k] !== undefined && d[k] !== null) el.textContent = String(d[k]);
        else if (k === "error") el.textContent = "";
      });
      if (bar) { bar.value = imp.progress.percent; bar.textContent = imp.progress.percent + "%"; }
      if (status) status.className = "badge import-" + imp.status;
      box.setAttribute("data-status", imp.status);
      box.setAttribute("data-live", d.live ? "1" : "0");
      show(document.getElementById("import-error"), !!d.error);
      show(document.getElementById("import-failed-rows"), imp.progress.failed > 0);
      show(document.getElementById("import-done-hint"), imp.status === "done");
      show(document.querySelector("[data-import-stop]"), !!d.canStop);
      show(document.querySelector("[data-import-resume]"), !!d.canResume);
      return d.live;
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": token } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (data) { if (apply(data.import)) setTimeout(poll, 1000); })
        .catch(function () { setTimeout(poll, 5000); });
    }
    if (box.getAttribute("data-live") === "1") setTimeout(poll, 500);
  }

  // The batch bar's export buttons send the rows selected on this page (the checkboxes
  // belong to that form already; this keeps the count in the button's title).
  function wireBatchExport() {
    var form = document.getElementById("batch-export");
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      var n = $all(".row-select").filter(function (b) { return b.checked; }).length;
      if (n === 0) ev.preventDefault();
    });
  }
  // ---- End of issue 6 ----

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
    wireMerge();
    wireRows();
    wireCopy();
    wireMapping(); wireImportProgress(); wireBatchExport(); // issue 6
    $all("dialog[data-open-on-load]").forEach(function (d) { if (d.showModal) d.showModal(); });
  });
})();
