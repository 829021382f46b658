// The web chat page (api/chat/): the conversation arrives as server-sent events (each an outbox
// row, resumed by Last-Event-ID after a drop or a restart: the browser's EventSource sends it
// by itself); texts and button presses are posted as JSON with an id of the page's own, sent
// again with the same id after a network error so the server handles each once. Files (the
// camera, or several picked at once) are posted one by one as forms, those picked together
// sharing a group (a Telegram album), each with its own id, retried the same way.
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

  function t(key, values) {
    return texts[language][key].replace(/\{(\w+)\}/g, function (m, k) { return values && k in values ? values[k] : m; });
  }

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
          el.dataset.data = b.data;
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
      if (ev.file && ev.file.thumb) {
        // A photo the bot kept: small (its thumbnail), a tap opens the photo.
        var open = document.createElement("a");
        open.className = "thumb"; open.href = ev.file.url; open.target = "_blank"; open.rel = "noopener";
        var small = document.createElement("img");
        small.src = ev.file.thumb; small.alt = ev.file.name; small.title = ev.file.name;
        open.appendChild(small);
        box.appendChild(open);
      } else if (ev.file) {
        // A video, a document, or a photo that was not kept: its name.
        var f = document.createElement("div");
        f.className = "file";
        f.textContent = (ev.file.kind === "photo" ? "📷 " : "📎 ") + ev.file.name;
        box.appendChild(f);
      }
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

  // A message is tried again for about ten minutes (a restart, a phone between networks):
  // soon at first, then every 10 s.
  var RETRIES = 65;
  function later(tries) {
    return new Promise(function (ok) { setTimeout(ok, Math.min(10000, 500 * Math.pow(2, tries))); });
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
      if (tries > RETRIES) return null;
      return later(tries).then(function () { return post(url, body, tries + 1); });
    });
  }

  function postFile(body, tries) {
    tries = tries || 0;
    return fetch("/chat/upload", { method: "POST", credentials: "same-origin", body: body }).then(null, function () {
      if (tries > RETRIES) return null;
      return later(tries).then(function () { return postFile(body, tries + 1); });
    });
  }

  function sendFiles(list) {
    var files = Array.prototype.slice.call(list);
    var group = files.length > 1 ? newId() : null;
    // One after the other: the bot takes an album's files in the order they were picked.
    return files.reduce(function (done, file) {
      return done.then(function () {
        if (file.size > window.CHAT_MAX_UPLOAD) {
          statusEl.textContent = t("upload_failed", { name: file.name, reason: t("too_large") });
          return null;
        }
        statusEl.textContent = t("uploading", { name: file.name });
        var form = new FormData();
        form.append("id", newId());
        if (group) form.append("group", group);
        form.append("file", file, file.name);
        return postFile(form).then(function (r) {
          if (r && r.status === 413) statusEl.textContent = t("upload_failed", { name: file.name, reason: t("too_large") });
          else if (r && r.status === 429) statusEl.textContent = t("busy");
          else if (r && r.ok) statusEl.textContent = t("online");
        });
      });
    }, Promise.resolve());
  }

  ["camera", "files"].forEach(function (id) {
    var picker = document.getElementById(id);
    picker.addEventListener("change", function () {
      var chosen = picker.files;
      sendFiles(chosen).then(function () { picker.value = ""; });
    });
  });

  document.getElementById("forget").addEventListener("click", function () {
    if (!window.confirm(t("forget_confirm"))) return;
    post("/chat/forget", {}).then(function () { window.location.replace("/chat"); });
  });

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
    document.getElementById("forget").textContent = t("forget");
    input.placeholder = t("placeholder");
    document.title = t("title");
  });

  var stream = new EventSource("/chat/events");
  stream.addEventListener("chat", function (e) { show(JSON.parse(e.data)); });
  stream.addEventListener("open", function () { statusEl.textContent = t("online"); document.body.dataset.live = "1"; });
  stream.addEventListener("error", function () { statusEl.textContent = t("offline"); document.body.dataset.live = "0"; });
})();
