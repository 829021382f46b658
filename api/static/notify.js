// The agent's notifications, live (api/panel/notifications.py): the badge in the top bar and
// the count in the tab's title follow the server-sent events; a new notification also shows as
// the browser's own notification when the agent allowed it (the button on the notifications
// page asks). The browser's EventSource reconnects by itself, saying the last id it had.
(function () {
  "use strict";
  const link = document.getElementById("notifications");
  const badge = document.getElementById("notify-count");
  if (!link || !badge || !window.EventSource) return;
  const baseTitle = document.title;

  function show(count) {
    badge.textContent = String(count);
    badge.hidden = count === 0;
    document.title = (count > 0 ? "(" + count + ") " : "") + baseTitle;
  }

  function desktop(items) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    for (const item of items) {
      const shown = new Notification(item.text, { tag: "aftersales-" + item.id, body: item.excerpt || "" });
      shown.onclick = () => { window.focus(); location.href = "/panel/notifications/" + item.id + "/open"; };
    }
  }

  const source = new EventSource(link.dataset.notifyStream);
  source.addEventListener("notify", (e) => {
    const data = JSON.parse(e.data);
    show(data.count);
    link.dataset.live = "1"; // the stream answered (the badge is the server's count now)
    if (!data.initial && data.new.length) desktop(data.new);
    document.dispatchEvent(new CustomEvent("panel:notify", { detail: data }));
  });

  const ask = document.getElementById("notify-permission");
  if (ask && "Notification" in window && Notification.permission === "default") {
    ask.hidden = false;
    ask.addEventListener("click", () => {
      Notification.requestPermission().then(() => { ask.hidden = true; });
    });
  }
})();
