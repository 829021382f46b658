// The web chat page (api/chat/): the conversation arrives as server-sent events (each an outbox
// row, resumed by Last-Event-ID after a drop or a restart: the browser's EventSource sends it
// by itself); texts and button presses are posted as JSON with an id of the page's own, sent
// again with the same id after a network error so the server handles each once.
(function () {
  "use strict";
  var texts = JSON.parse(document.getElementById("texts").textContent);
  var language = window.CHAT_LANGUAGE;
  var log = document.getElementById("log");
  var keyboard = document.getElementById("keyboard");
  var statusEl = document.getElementById("status");
  var input = document.getElementById("text");
  // Telegram's HTML subset: anything else in a message is shown as text.
  var ALLOWED = { B: 1, STRONG: 1, I: 1, EM: 1, U: 1, INS: 1, S: 1, STRIKE: 1, DEL: 1, CODE: 1, PRE: 1, A: 1, BLOCKQUOTE: 1, TG_SPOILER: 1 };

  function t(key) { return texts[language][key]; }

  function newId() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function clean(node, into) {
    node.childNodes.forEach(function (child) {
      if (child.nodeType === Node.TEXT_NODE) { into.appendChild(document.createTextNode(child.textContent)); return; }
      if (child.nodeType !== Node.ELEMENT_NODE) return;
      if (ALLOWED[child.tagName]) {
        var copy = document.createElement(child.tagName === "A" ? "a" : child.tagName.toLowerCase());
        if (child.tagName === "A") {
          var href = child.getAttribute("href") || "";
          if (/^https?:\/\//i.test(href)) { copy.href = href; copy.target = "_blank"; copy.rel = "noopener noreferrer"; }
        }
        clean(child, copy);
        into.appendChild(copy);
      } else {
        clean(child, into);
      }
    });
  }

  function richText(html) {
    var doc = new DOMParser().parseFromString("<div>" + html.replace(/\n/g, "<br>") + "</div>", "text/html");
    var out = document.createElement("div");
    doc.body.firstChild.querySelectorAll("br").forEach(function (br) { br.replaceWith("\n"); });
    clean(doc.body.firstChild, out);
    return out;
  }

  function drawButtons(box, rows, messageId) {
    box.innerHTML = "";
    (rows || []).forEach(function (row) {
      var line = document.createElement("div");
      line.className = "row";
      row.forEach(function (b) {
        var el;
        if (b.url) {
          el = document.createElement("a");
          el.href = b.url; el.target = "_blank"; el.rel = "noopener noreferrer";
        } else {
          el = document.createElement("button");
          el.type = "button";
          el.addEventListener("click", function () {
            el.disabled = true;
            post("/chat/press", { id: newId(), data: b.data, message: messageId }).then(function () { el.disabled = false; });
          });
        }
        el.textContent = b.text;
        line.appendChild(el);
      });
      box.appendChild(line);
    });
  }

  function drawKeyboard(rows) {
    keyboard.innerHTML = "";
    (rows || []).forEach(function (row) {
      row.forEach(function (label) {
        var el = document.createElement("button");
        el.type = "button";
        el.textContent = label;
        el.addEventListener("click", function () { sendText(label); });
        keyboard.appendChild(el);
      });
    });
  }

  function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 80; }

  function show(ev) {
    var follow = atBottom();
    if (ev.type === "markup") {
      var target = log.querySelector('[data-id="' + ev.target + '"] .buttons');
      if (target) drawButtons(target, ev.buttons, ev.target);
      return;
    }
    var box = document.createElement("div");
    box.className = "msg " + (ev.type === "mine" ? "mine" : "bot");
    if (ev.type === "mine") {
      box.textContent = ev.text;
    } else {
      box.dataset.id = ev.id;
      box.appendChild(richText(ev.html || ""));
      if (ev.file) {
        if (ev.file.kind === "photo") {
          var img = document.createElement("img");
          img.src = ev.file.url; img.alt = "";
          box.appendChild(img);
        } else {
          var a = document.createElement("a");
          a.href = ev.file.url; a.textContent = "📎 " + ev.file.kind; a.target = "_blank";
          box.appendChild(a);
        }
      }
      var buttons = document.createElement("div");
      buttons.className = "buttons";
      box.appendChild(buttons);
      drawButtons(buttons, ev.buttons, ev.id);
      if (ev.keyboard) drawKeyboard(ev.keyboard);
    }
    log.appendChild(box);
    if (follow || ev.type === "mine") log.scrollTop = log.scrollHeight;
  }

  function post(url, body, tries) {
    tries = tries || 0;
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body)
    }).then(function (r) {
      if (r.status === 429) statusEl.textContent = t("busy");
      return r;
    }, function () {
      // The network dropped or the server restarts: the same id again, so it counts once.
      if (tries > 20) return null;
      return new Promise(function (ok) { setTimeout(ok, 1000); }).then(function () { return post(url, body, tries + 1); });
    });
  }

  function sendText(text) {
    text = text.trim();
    if (!text) return;
    post("/chat/send", { id: newId(), text: text });
  }

  document.getElementById("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    input.value = "";
    sendText(text);
  });

  document.getElementById("switch").addEventListener("click", function () {
    language = language === "en" ? "zh-CN" : "en";
    post("/chat/language", { language: language });
    document.documentElement.lang = language;
    document.getElementById("title").textContent = t("title");
    document.getElementById("send").textContent = t("send");
    document.getElementById("switch").textContent = t("switch");
    input.placeholder = t("placeholder");
    document.title = t("title");
  });

  var stream = new EventSource("/chat/events");
  stream.addEventListener("chat", function (e) { show(JSON.parse(e.data)); });
  stream.addEventListener("open", function () { statusEl.textContent = t("online"); document.body.dataset.live = "1"; });
  stream.addEventListener("error", function () { statusEl.textContent = t("offline"); document.body.dataset.live = "0"; });
})();
