// Tapestry's only script (CSP: script-src 'self', no inline script).
// Forms marked data-json are sent as JSON to their action with the CSRF
// token; the sign-in steps (password, second factor or its first-time
// enrolment) are walked here. No request ever leaves this origin.
(function () {
  "use strict";

  function csrf() {
    return sessionStorage.getItem("csrf") || "";
  }

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
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

  function fields(form, submitter) {
    const out = {};
    let data;
    try {
      data = new FormData(form, submitter || null);
    } catch (e) {
      data = new FormData(form);
    }
    data.forEach(function (value, key) {
      out[key] = value;
    });
    return out;
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
    const res = await post(form.getAttribute("action"), fields(form, ev.submitter));
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
    } else {
      say(form, "Done.");
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
      const res = await post("/api/v1/me/mfa/enrol", {});
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
