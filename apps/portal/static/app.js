// Phaze portal script. Small, no dependencies, loaded with `defer` from /static/app.js:
// the Content-Security-Policy allows no inline script, so all behaviour lives here.
(function () {
  "use strict";

  // 1. <form data-confirm="message">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  // 2. fetchJSON(url, options): fetch with the CSRF token and a JSON content type.
  // A plain object in options.body is serialised with JSON.stringify. Resolves with the parsed
  // response body (null when empty); rejects with an Error carrying `status` and `body` when the
  // response is not 2xx. The token is never sent to another origin.
  function fetchJSON(url, options) {
    var target = new URL(url, window.location.href);
    if (target.origin !== window.location.origin) {
      return Promise.reject(new Error("phaze.fetchJSON only talks to this site"));
    }
    var opts = Object.assign({}, options);
    var headers = new Headers(opts.headers || {});
    headers.set("X-CSRF-Token", csrfToken());
    headers.set("Content-Type", "application/json");
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    opts.headers = headers;
    opts.credentials = "same-origin";
    if (opts.body !== undefined && opts.body !== null && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
    }
    return fetch(target.href, opts).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        if (text) {
          try { body = JSON.parse(text); } catch (e) { body = null; }
        }
        if (!response.ok) {
          var err = new Error((body && body.error) || "Request failed (" + response.status + ")");
          err.status = response.status;
          err.body = body;
          throw err;
        }
        return body;
      });
    });
  }

  // 3. <form data-challenge="token" data-challenge-bits="n">: before sending, find a counter
  // whose SHA-256("token:counter") starts with n zero bits and put "token.counter" in the
  // form's `challenge` field (the server's proof-of-work check after repeated failures).
  function leadingZeroBits(bytes) {
    var bits = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { bits += 8; continue; }
      return bits + Math.clz32(bytes[i]) - 24;
    }
    return bits;
  }

  async function solveChallenge(token, bits) {
    var encoder = new TextEncoder();
    for (var n = 0; ; n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(token + ":" + n));
      if (leadingZeroBits(new Uint8Array(digest)) >= bits) return token + "." + n;
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-challenge")) return;
    var field = form.querySelector('input[name="challenge"]');
    if (!field || field.value) return;
    event.preventDefault();
    var status = document.getElementById("challenge-status");
    var button = form.querySelector('button[type="submit"]');
    if (status) status.textContent = "Checking your browser…";
    if (button) button.disabled = true;
    var bits = parseInt(form.getAttribute("data-challenge-bits"), 10) || 0;
    solveChallenge(form.getAttribute("data-challenge"), bits).then(function (answer) {
      field.value = answer;
      form.submit();
    });
  });

  window.phaze = Object.assign(window.phaze || {}, { fetchJSON: fetchJSON });
})();
