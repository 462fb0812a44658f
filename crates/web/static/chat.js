// Tapestry session room: the live chat panel. Uses the room's WebSocket
// (owned by video.js) through "room-message" / "room-send" events.
(function () {
  "use strict";
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-text");
  var typing = document.getElementById("typing");
  if (!log || !form || !input) { return; }
  var typingTimer = null, lastTyping = 0;

  function roomSend(obj) { document.dispatchEvent(new CustomEvent("room-send", { detail: obj })); }

  document.addEventListener("room-message", function (e) {
    var m = e.detail;
    if (m.type === "chat") {
      var li = document.createElement("li");
      var who = document.createElement("strong");
      // Group rooms name the speaker; one-to-one rooms say the role.
      who.textContent = m.name ? m.name + ": " : (m.from === "host" ? "Clinician: " : "Client: ");
      li.appendChild(who);
      li.appendChild(document.createTextNode(m.text));
      log.appendChild(li);
      typing.textContent = "";
    } else if (m.type === "typing") {
      typing.textContent = (m.name ? m.name : (m.from === "host" ? "The clinician" : "The client")) + " is typing…";
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.textContent = ""; }, 3000);
    }
  });

  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 1500) { lastTyping = now; roomSend({ type: "typing" }); }
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    roomSend({ type: "chat", text: text });
    input.value = "";
  });
})();
