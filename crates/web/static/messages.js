// Tapestry messages: sends the compose form as JSON with the chosen file
// attached (base64), since a plain JSON form cannot carry a file. Without
// a file, tapestry.js's data-json handling applies unchanged.
(function () {
  "use strict";
  var form = document.getElementById("compose");
  var file = document.getElementById("m-file");
  if (!form || !file) { return; }
  form.addEventListener("submit", function (ev) {
    var chosen = file.files && file.files[0];
    if (!chosen) { return; }
    ev.preventDefault();
    ev.stopImmediatePropagation();
    var reader = new FileReader();
    reader.onload = async function () {
      var data = String(reader.result).split(",")[1] || "";
      var body = { body: form.elements.body.value, attachment: { file_name: chosen.name, data_base64: data } };
      var r = await fetch(form.getAttribute("action"), {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": sessionStorage.getItem("csrf") || form.dataset.csrf },
        body: JSON.stringify(body)
      });
      if (r.ok) { location.reload(); return; }
      var e = null; try { e = await r.json(); } catch (x) { e = null; }
      var p = form.querySelector(".message") || form.appendChild(document.createElement("p"));
      p.className = "message"; p.setAttribute("role", "status");
      p.textContent = e && e.error ? e.error.message : "The message was not sent.";
    };
    reader.readAsDataURL(chosen);
  }, true);
})();
