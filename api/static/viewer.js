// The photo viewer on a case page: a click on a photo opens it large over the page, with the
// case's other photos a key away (← →), a zoom to its real size (a click on it, or "Zoom"),
// and the original file one click away. Esc closes it. Without this file a click opens the
// photo in a new tab, as before.
(function () {
  "use strict";

  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const img = document.getElementById("viewer-img");
  const original = document.getElementById("viewer-original");
  const count = document.getElementById("viewer-count");
  let photos = [];
  let at = 0;
  let opener = null;

  function show(i) {
    at = (i + photos.length) % photos.length;
    const link = photos[at];
    viewer.classList.remove("zoomed");
    img.src = link.href;
    img.alt = link.querySelector("img")?.alt || "";
    original.href = link.href;
    count.textContent = at + 1 + " / " + photos.length;
  }

  function open(link) {
    photos = Array.from(document.querySelectorAll("a[data-photo]"));
    opener = link;
    viewer.hidden = false;
    show(photos.indexOf(link));
    viewer.querySelector('[data-viewer="close"]').focus();
  }

  function close() {
    viewer.hidden = true;
    img.removeAttribute("src");
    opener?.focus();
  }

  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a[data-photo]");
    if (link && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
      e.preventDefault();
      open(link);
      return;
    }
    const button = e.target.closest && e.target.closest("[data-viewer]");
    if (!button || viewer.hidden) return;
    const what = button.dataset.viewer;
    if (what === "prev") show(at - 1);
    else if (what === "next") show(at + 1);
    else if (what === "zoom") viewer.classList.toggle("zoomed");
    else if (what === "close") close();
  });
  img.addEventListener("click", () => viewer.classList.toggle("zoomed"));
  viewer.addEventListener("click", (e) => {
    if (e.target.classList.contains("viewer-stage")) close();
  });

  // Before the page's own shortcuts (panel.js): while the viewer is open, keys are its own.
  document.addEventListener(
    "keydown",
    (e) => {
      if (viewer.hidden) return;
      if (e.key === "ArrowLeft") show(at - 1);
      else if (e.key === "ArrowRight") show(at + 1);
      else if (e.key === "Escape") close();
      else if (e.key === "+" || e.key === "=" || e.key === "z") viewer.classList.toggle("zoomed");
      else return;
      e.preventDefault();
      e.stopPropagation();
    },
    true,
  );
})();
