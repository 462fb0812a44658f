// Records forms (CSP: same origin, no inline script). Forms marked
// data-records are sent as JSON to their action with the CSRF token; the
// formulation form is turned into the nested formulation document first.
(function () {
  "use strict";

  function csrf() {
    return sessionStorage.getItem("csrf") || "";
  }

  function say(form, text) {
    let p = form.querySelector(".message");
    if (!p) {
      p = document.createElement("p");
      p.className = "message";
      p.setAttribute("role", "status");
      form.appendChild(p);
    }
    p.textContent = text;
  }

  function list(text) {
    return (text || "").split("\n").map(function (s) { return s.trim(); }).filter(function (s) { return s.length > 0; });
  }

  function formulation(form) {
    const data = new FormData(form);
    const f = {
      age: parseInt(data.get("age") || "0", 10),
      presenting_problems: data.getAll("presenting_problems"),
      five_ps: {},
      dimension_ratings: {},
      goals: list(data.get("goals")),
      strengths: list(data.get("strengths")),
      preferences: { prefer: list(data.get("preferences.prefer")), avoid: list(data.get("preferences.avoid")), notes: [] },
      style: {},
      flags: data.getAll("flags"),
      risk: { level: data.get("risk.level") || "none" },
      cultural_notes: list(data.get("cultural_notes")),
    };
    ["presenting", "predisposing", "precipitating", "perpetuating", "protective"].forEach(function (p) {
      f.five_ps[p] = list(data.get("five_ps." + p));
    });
    data.forEach(function (value, key) {
      if (key.indexOf("dimension_ratings.") === 0 && value !== "") {
        f.dimension_ratings[key.slice(18)] = parseInt(value, 10);
      }
      if (key.indexOf("style.") === 0 && value !== "") {
        f.style[key.slice(6)] = value;
      }
    });
    const body = { formulation: f };
    const reason = (data.get("reason") || "").trim();
    if (reason) { body.reason = reason; }
    return body;
  }

  function plain(form) {
    const out = {};
    new FormData(form).forEach(function (value, key) {
      if (value !== "") { out[key] = value; }
    });
    return out;
  }

  document.addEventListener("submit", async function (ev) {
    const form = ev.target;
    const kind = form.dataset ? form.dataset.records : null;
    if (!kind) { return; }
    ev.preventDefault();
    let body;
    if (kind === "formulation") {
      body = formulation(form);
    } else if (kind === "assessment") {
      const data = new FormData(form);
      body = {
        instrument: data.get("instrument"),
        answers: data.getAll("answers").map(function (v) { return parseInt(v, 10); }),
      };
    } else if (kind === "review") {
      body = { techniques: list((new FormData(form).get("techniques") || "").replace(/,/g, "\n")) };
    } else {
      body = plain(form);
    }
    const r = await fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      say(form, data && data.error ? data.error.message : "That did not work.");
      return;
    }
    say(form, "Saved.");
    location.reload();
  });
})();
