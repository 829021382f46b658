// Keyboard shortcuts and small conveniences for the agents' panel. Everything works without
// this file (plain forms and links); it only saves clicks. Shortcuts are listed on "?".
(function () {
  "use strict";

  const page = document.body.dataset.page;
  const help = document.getElementById("help");
  let lastKey = "";
  let lastTyped = 0;

  function typingInField(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  // ---- queue: row selection with j/k, remembered so "n"/"p" in a case walk the same list
  function rows() {
    return Array.from(document.querySelectorAll("#queue-rows tr[data-case]"));
  }
  let selected = 0;
  function select(i) {
    const all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((r, j) => r.classList.toggle("selected", j === selected));
    all[selected].scrollIntoView({ block: "nearest" });
  }
  function rememberQueue() {
    const numbers = rows().map((r) => r.dataset.case);
    if (numbers.length) sessionStorage.setItem("panel.queue", JSON.stringify(numbers));
  }
  function neighbour(step) {
    const head = document.querySelector(".case-head");
    if (!head) return null;
    const list = JSON.parse(sessionStorage.getItem("panel.queue") || "[]");
    const at = list.indexOf(head.dataset.number);
    const next = list[at + step];
    return at >= 0 && next ? next : null;
  }

  // ---- back to the queue the agent came from (its filters and order), not to the default one
  function queueUrl() {
    const url = sessionStorage.getItem("panel.queueUrl") || "";
    return url.startsWith("/panel?") || url === "/panel" ? url : "/panel";
  }
  if (page === "queue") {
    sessionStorage.setItem("panel.queueUrl", location.pathname + location.search);
    // On a phone the filters fold away, unless one is set (then they show what is filtered).
    const filters = document.getElementById("filters");
    if (filters && !filters.dataset.active && window.matchMedia("(max-width: 700px)").matches) {
      filters.removeAttribute("open");
    }
  }
  document.querySelectorAll("a.back[data-queue-back]").forEach((a) => { a.href = queueUrl(); });

  if (page === "queue") {
    rememberQueue();
    select(0);
    document.body.addEventListener("htmx:afterSwap", () => {
      rememberQueue();
      select(selected);
    });
  }

  // ---- case: typing indicator for presence, Ctrl+Enter to send, reload link
  window.panelTyping = function () {
    return Date.now() - lastTyped < 5000;
  };
  document.addEventListener("input", (e) => {
    if (e.target && e.target.id === "reply-text") lastTyped = Date.now();
  });
  // ---- case: a reply from a page the case has moved on from (the watch poll saw a change) is
  // not sent blind. The server refuses it anyway (the page's version) and keeps the text; this
  // asks first, so the agent reads what changed before anything else happens.
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!form || form.id !== "reply" || !document.getElementById("stale")) return;
    if (!confirm(form.dataset.staleWarning)) e.preventDefault();
  });
  // ---- queue: select every row for a bulk action (the poll pauses while rows are selected)
  document.addEventListener("change", (e) => {
    const t = e.target;
    if (t && t.matches && t.matches("[data-select-all]")) {
      document.querySelectorAll('#queue-rows input[name="case"]').forEach((box) => { box.checked = t.checked; });
    }
  });
  document.addEventListener("click", (e) => {
    const t = e.target;
    if (t && t.matches && t.matches("[data-help]")) toggleHelp();
    if (t && t.matches && t.matches("[data-reload]")) {
      e.preventDefault();
      location.replace(location.pathname);
    }
    if (t === help) toggleHelp(false);
  });

  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target && e.target.id === "reply-text") {
      e.preventDefault();
      document.getElementById("reply").requestSubmit();
      return;
    }
    if (e.key === "Escape") {
      toggleHelp(false);
      if (typingInField(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typingInField(e.target)) return;
    const combo = lastKey + " " + e.key;
    lastKey = e.key;
    setTimeout(() => { lastKey = ""; }, 800);
    if (e.key === "?") { toggleHelp(); return; }
    if (e.key === "/") { e.preventDefault(); document.getElementById("search")?.focus(); return; }
    if (combo === "g q") { location.href = queueUrl(); return; }
    if (page === "queue") {
      if (e.key === "j") select(selected + 1);
      else if (e.key === "k") select(selected - 1);
      else if (e.key === "Enter" || e.key === "o") rows()[selected]?.querySelector("a[data-open]")?.click();
      else if (e.key === "t") rows()[selected]?.querySelector("[data-take]")?.click();
      return;
    }
    if (page === "case") {
      if (e.key === "r") { e.preventDefault(); document.getElementById("reply-text")?.focus(); }
      else if (e.key === "t") document.querySelector(".case-head [data-take]")?.click();
      else if (e.key === "n" || e.key === "p") {
        const next = neighbour(e.key === "n" ? 1 : -1);
        if (next) location.href = "/panel/cases/" + encodeURIComponent(next);
      } else if (e.key === "a") {
        const approve = document.querySelector('button[data-action="approve"]');
        if (approve && confirm(approve.textContent.trim() + "?")) approve.click();
      }
    }
  });
})();
