// Small page behaviours htmx does not cover. No inline handlers, so htmx's eval stays off.
(function () {
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

  document.addEventListener("htmx:wsAfterMessage", scrollDown);
  document.addEventListener("htmx:load", scrollDown);

  document.addEventListener("htmx:wsAfterSend", function (e) {
    const form = e.detail.elt;
    if (form && form.id === "chat-form") {
      form.reset();
      document.getElementById("msg").focus();
      stickToBottom = true;
    }
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    const form = e.detail.elt;
    if (form && form.id === "todo-form" && e.detail.successful) {
      form.reset();
      document.getElementById("title").focus();
    }
  });
})();
