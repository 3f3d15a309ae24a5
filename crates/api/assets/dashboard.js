// dialtone dashboard: small progressive enhancements. Every page works without it.
(function () {
  "use strict";

  function openDialog(d) {
    if (!d) return;
    // Rendered open (works without scripts): reopen as a modal. Removing the
    // attribute, unlike close(), fires no "close" event.
    if (d.open) d.removeAttribute("open");
    if (typeof d.showModal === "function") d.showModal(); else d.setAttribute("open", "");
  }

  function init(root) {
    // Buttons that open a <dialog>: data-open="dialog-id". A button that submits a
    // form (the page standing in for the dialog without scripts) stays here.
    root.querySelectorAll("[data-open]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        var d = document.getElementById(b.getAttribute("data-open"));
        if (!d) return;
        e.preventDefault();
        openDialog(d);
      });
    });
    // Buttons that close their dialog. A link (the page to go back to without
    // scripts) stays here.
    root.querySelectorAll("[data-close]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        var d = b.closest("dialog");
        if (!d) return;
        e.preventDefault();
        d.close();
      });
    });
    // Dialogs rendered open by the server become modal (focus trapped, Esc closes).
    root.querySelectorAll("dialog[data-modal][open]").forEach(openDialog);
    // A one-time reveal: forget the secret from the page once closed, and make a
    // reload show the list (not re-submit the form).
    root.querySelectorAll("[data-replace-url]").forEach(function (el) {
      if (window.history && history.replaceState) history.replaceState(null, "", el.getAttribute("data-replace-url"));
    });
    root.querySelectorAll("dialog[data-once]").forEach(function (d) {
      d.addEventListener("close", function () { d.remove(); });
    });
    // Copy buttons: data-copy="input-id". Rendered hidden: without scripts the text
    // is selected and copied by hand, with no button that does nothing.
    root.querySelectorAll("[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        var input = document.getElementById(b.getAttribute("data-copy"));
        var status = document.getElementById("copy-status");
        if (!input) return;
        var done = function () {
          b.textContent = "Copied";
          if (status) status.textContent = "Copied to the clipboard.";
          setTimeout(function () { b.textContent = "Copy"; }, 2000);
        };
        input.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () {
            document.execCommand("copy"); done();
          });
        } else {
          document.execCommand("copy"); done();
        }
      });
    });
    // Selects that submit their form when changed (the workspace switcher).
    root.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    // The read-only toggle: write access is not offered while it is on.
    var ro = root.querySelector("#read-only");
    if (ro) {
      var sync = function () {
        root.querySelectorAll("select[data-perm]").forEach(function (sel) {
          var w = sel.querySelector("option[data-write]");
          if (!w) return;
          if (ro.checked && sel.value === "write") sel.value = "read";
          w.disabled = ro.checked;
        });
        var summary = document.getElementById("perm-summary");
        if (summary) summary.textContent = ro.checked
          ? "— read-only: every resource readable, nothing writable"
          : "— full access by default; restrict resource by resource";
      };
      ro.addEventListener("change", sync);
      sync();
    }
    // Usage meters.
    root.querySelectorAll("[data-pct]").forEach(function (m) {
      var pct = Math.max(0, Math.min(100, parseInt(m.getAttribute("data-pct"), 10) || 0));
      m.style.width = pct + "%";
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
})();
