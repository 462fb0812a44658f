// Tapestry's only script (CSP: script-src 'self', no inline script).
// Every page form is an ordinary <form method="post"> that works without
// JavaScript (the server converts the post, crate::forms). Here, forms
// marked data-json are enhanced: sent as JSON to their action with the
// CSRF token, named by the same convention as the server's (docs/forms.md);
// the sign-in steps (password, second factor or its first-time enrolment)
// are walked here. No request ever leaves this origin.
(function () {
  "use strict";

  // The page's forms carry the session's token in _csrf (stamped by the
  // server); sessionStorage keeps the one from sign-in for forms without it.
  function csrf(form) {
    const field = form && form.querySelector("input[name=_csrf]");
    return (field && field.value) || sessionStorage.getItem("csrf") || "";
  }

  async function post(url, body, form) {
    const r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf(form) },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    return { ok: r.ok, status: r.status, data: data };
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

  // The form convention (the server's crate::forms does the same): a.b
  // nests, name[] collects an array, rows[0].x rows[1].x make an array of
  // objects, :number :bool :lines :csv :opt type.
  function typed(kind, value) {
    const v = String(value);
    if (kind === "number") {
      return v.trim() === "" ? undefined : Number(v);
    }
    if (kind === "bool") {
      return ["on", "true", "yes", "1"].indexOf(v.trim().toLowerCase()) >= 0;
    }
    if (kind === "lines" || kind === "csv") {
      const parts = kind === "lines" ? v.split(/\r?\n/) : v.split(/[,\r\n]/);
      return parts.map(function (s) { return s.trim(); }).filter(function (s) { return s.length > 0; });
    }
    if (kind === "opt") {
      return v.trim() === "" ? undefined : v.trim();
    }
    return v;
  }

  function put(root, name, value) {
    let kind = "";
    const colon = name.lastIndexOf(":");
    if (colon >= 0) {
      kind = name.slice(colon + 1);
      name = name.slice(0, colon);
    }
    const array = name.slice(-2) === "[]";
    if (array) {
      name = name.slice(0, -2);
    }
    // rows[2].x is the path rows, [2], x; fold() makes the rows an array.
    const path = [];
    name.split(".").forEach(function (seg) {
      const m = /^([^\[\]]+)(\[\d{1,3}\])?$/.exec(seg);
      if (m) {
        path.push(m[1]);
        if (m[2]) {
          path.push(m[2]);
        }
      } else {
        path.push(seg);
      }
    });
    let obj = root;
    for (let i = 0; i < path.length - 1; i++) {
      if (typeof obj[path[i]] !== "object" || obj[path[i]] === null) {
        obj[path[i]] = {};
      }
      obj = obj[path[i]];
    }
    const key = path[path.length - 1];
    const v = typed(kind, value);
    if (array) {
      obj[key] = (obj[key] || []).concat(v === undefined || v === "" ? [] : v);
    } else if (kind === "bool") {
      obj[key] = obj[key] === true || v;
    } else if (v !== undefined) {
      obj[key] = v;
    }
  }

  // Objects made of [n] keys become arrays in index order, without the
  // rows left empty (as the server does).
  function fold(value) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return value;
    }
    const keys = Object.keys(value);
    const indexed = keys.filter(function (k) { return /^\[\d{1,3}\]$/.test(k); });
    if (indexed.length === 0 || indexed.length !== keys.length) {
      keys.forEach(function (k) { value[k] = fold(value[k]); });
      return value;
    }
    return indexed
      .sort(function (a, b) { return parseInt(a.slice(1), 10) - parseInt(b.slice(1), 10); })
      .map(function (k) { return fold(value[k]); })
      .filter(function (v) {
        return v !== "" && !(typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
      });
  }

  function fields(form, submitter) {
    const out = {};
    let data;
    try {
      data = new FormData(form, submitter || null);
    } catch (e) {
      data = new FormData(form);
    }
    data.forEach(function (value, key) {
      if (key.charAt(0) !== "_") {
        put(out, key, value);
      }
    });
    return fold(out);
  }

  function signedIn(d) {
    if (d && d.csrf_token) {
      sessionStorage.setItem("csrf", d.csrf_token);
    }
    if (d && d.mfa_enrolment_required) {
      location.href = "/mfa#enrol";
    } else if (d && d.mfa_required) {
      location.href = "/mfa";
    } else {
      location.href = "/me";
    }
  }

  function enrolled(form, d) {
    if (d && d.csrf_token) {
      sessionStorage.setItem("csrf", d.csrf_token);
    }
    const list = document.getElementById("recovery-codes");
    if (list && d && d.recovery_codes) {
      list.textContent = "";
      d.recovery_codes.forEach(function (code) {
        const li = document.createElement("li");
        li.textContent = code;
        list.appendChild(li);
      });
      document.getElementById("recovery").hidden = false;
    }
    say(form, "Your second factor is set up. Keep the recovery codes somewhere safe; each works once.");
  }

  document.addEventListener("submit", async function (ev) {
    const form = ev.target;
    if (!form.dataset || !form.dataset.json) {
      return;
    }
    ev.preventDefault();
    const res = await post(form.getAttribute("action"), fields(form, ev.submitter), form);
    if (!res.ok) {
      const message = res.data && res.data.error ? res.data.error.message : "That did not work.";
      say(form, message);
      return;
    }
    if (form.dataset.next === "signed-out") {
      sessionStorage.removeItem("csrf");
      location.href = "/sign-in";
    } else if (form.dataset.next === "signed-in") {
      signedIn(res.data);
    } else if (form.dataset.next === "enrolled") {
      enrolled(form, res.data);
    } else if (res.data && res.data.next) {
      location.href = res.data.next;
    } else if (res.data && res.data.link) {
      say(form, "Give this link to the person (it works once): " + location.origin + res.data.link);
    } else if (form.querySelector("input[name=_next]")) {
      location.href = form.querySelector("input[name=_next]").value;
    } else {
      // As without JavaScript: back to this page, now showing the change.
      location.reload();
    }
  });

  document.addEventListener("DOMContentLoaded", async function () {
    // One-time links carry their token in the fragment (never sent to a server log).
    document.querySelectorAll("input[name=token][data-from-fragment]").forEach(function (input) {
      if (!input.value && location.hash.length > 1) {
        input.value = decodeURIComponent(location.hash.slice(1));
      }
    });
    const qr = document.getElementById("qr");
    if (qr && location.hash === "#enrol") {
      const res = await post("/api/v1/me/mfa/enrol", {}, qr.closest("section"));
      if (res.ok) {
        // The QR code is drawn by the server (SVG, no third party).
        qr.innerHTML = res.data.qr_svg;
        document.getElementById("secret").textContent = res.data.secret;
        document.getElementById("enrol").hidden = false;
        document.getElementById("verify").hidden = true;
      }
    }
  });
})();
