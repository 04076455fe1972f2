// Page behaviours htmx does not cover. No inline handlers or eval: the CSP forbids them.
(function () {
  "use strict";

  // Model output is untrusted. The server sends it as escaped text (.body); here it becomes
  // Markdown HTML in a sibling (.md) through three gates: markdown-it with raw HTML off,
  // DOMPurify with a short allowlist (no images, no data-* or other attributes that htmx would
  // read), and an hx-disable container so htmx never processes anything inside.
  const markdown = window.markdownit({ html: false, linkify: true, breaks: true });
  const purifyConfig = {
    ALLOWED_TAGS: ["p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
                   "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"],
    ALLOWED_ATTR: ["href", "title", "start"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  };
  DOMPurify.addHook("afterSanitizeAttributes", function (node) {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  function render(article) {
    const body = article.querySelector(":scope > .body");
    const out = article.querySelector(":scope > .md");
    if (!body || !out) return;
    const text = body.textContent;
    if (!text || out.dataset.source === text) return;
    out.innerHTML = DOMPurify.sanitize(markdown.render(text), purifyConfig);
    out.dataset.source = text;
    article.classList.add("rendered");
  }

  const dirty = new Set();
  let scheduled = false;
  function schedule(article) {
    dirty.add(article);
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () {
      scheduled = false;
      dirty.forEach(function (a) { if (a.isConnected) render(a); });
      dirty.clear();
      scrollDown();
    });
  }

  function renderAll(root) {
    (root || document).querySelectorAll("article.msg.reply").forEach(schedule);
  }

  // Streamed text lands in .body by htmx's out-of-band swaps; watch for it wherever it lands.
  new MutationObserver(function (mutations) {
    mutations.forEach(function (m) {
      let node = m.target.nodeType === Node.ELEMENT_NODE ? m.target : m.target.parentElement;
      const article = node && node.closest("article.msg.reply");
      if (article) schedule(article);
      m.addedNodes.forEach(function (n) { if (n.nodeType === Node.ELEMENT_NODE) renderAll(n.parentElement); });
    });
  }).observe(document.documentElement, { childList: true, subtree: true, characterData: true });

  function msgList() { return document.getElementById("msg-list"); }
  let stickToBottom = true;

  document.addEventListener("scroll", function (e) {
    const list = msgList();
    if (e.target === list) stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }, true);

  function scrollDown() {
    const list = msgList();
    if (list && stickToBottom) list.scrollTop = list.scrollHeight;
  }

  // Every request of this page says which tab made it (X-Tab), so a change it makes is not sent
  // back to it: the chat's own id where the layer's page gave one, else this page's (the chat of a
  // plain app's page is fetched with it, and takes it).
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  const tab = Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  document.addEventListener("htmx:configRequest", function (e) {
    const chat = document.getElementById("chat");
    e.detail.headers["X-Tab"] = (chat && chat.dataset.tab) || tab;
  });

  // The app changed in another tab, or by the model: fetch this page's part of the app again,
  // keeping what the user was typing in it (and where).
  function typedFields(app) {
    return Array.from(app.querySelectorAll("input[name]:not([type=checkbox]):not([type=radio]):not([type=hidden]), textarea[name]"));
  }
  function fieldKey(app, el) {
    return Array.from(app.querySelectorAll("form")).indexOf(el.form) + "/" + el.name;
  }
  document.addEventListener("htmx:oobAfterSwap", function (e) {
    const app = document.getElementById("loop-app");
    if (!e.detail.target || e.detail.target.id !== "loop-refresh" || !app) return;
    const typed = new Map(typedFields(app).filter(function (el) { return el.value; })
                                          .map(function (el) { return [fieldKey(app, el), el.value]; }));
    const focused = app.contains(document.activeElement) ? fieldKey(app, document.activeElement) : null;
    htmx.ajax("GET", location.pathname + location.search, { target: "#loop-app", select: "#loop-app",
                                                            swap: "outerHTML", headers: { "X-Loop-Refresh": "1" } })
      .then(function () {
        const fresh = document.getElementById("loop-app");
        if (!fresh) return;
        typedFields(fresh).forEach(function (el) {
          const key = fieldKey(fresh, el);
          if (typed.has(key)) el.value = typed.get(key);
          if (key === focused) el.focus();
        });
      });
  });

  document.addEventListener("DOMContentLoaded", function () { renderAll(); scrollDown(); });
  document.addEventListener("htmx:wsAfterMessage", scrollDown);

  document.addEventListener("htmx:wsAfterSend", function (e) {
    const form = e.detail.elt;
    if (form && form.id === "chat-form") {
      form.reset();
      document.getElementById("msg").focus();
      stickToBottom = true;
    }
  });

  // A form of the app's part of the page (#loop-app) empties as soon as its request leaves (the
  // values are taken by then), so an entry typed while the first is in flight is not wiped; a
  // failed request gets its text back, and a notice above the app (#app-notice, made when the app
  // has none) says why, in the response's words.
  function appForm(elt) {
    return elt && elt.tagName === "FORM" && elt.closest("#loop-app") ? elt : null;
  }

  function appNotice() {
    let notice = document.getElementById("app-notice");
    const app = document.getElementById("loop-app");
    if (!notice && app) {
      notice = document.createElement("div");
      notice.id = "app-notice";
      notice.className = "notice";
      notice.setAttribute("role", "alert");
      app.prepend(notice);
    }
    return notice;
  }

  document.addEventListener("htmx:beforeRequest", function (e) {
    const form = appForm(e.detail.elt);
    if (form) {
      const field = form.querySelector("input[name]");
      form.dataset.sent = field ? field.value : "";
      form.reset();
    }
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    const form = appForm(e.detail.elt);
    if (!form) return;
    const field = form.querySelector("input[name]");
    const notice = appNotice();
    if (e.detail.successful) {
      if (notice) notice.textContent = "";
    } else {
      if (field && !field.value) field.value = form.dataset.sent || "";
      if (notice) notice.textContent = (e.detail.xhr && e.detail.xhr.responseText) || "That could not be saved; try again.";
    }
    if (field) field.focus();
  });
})();
