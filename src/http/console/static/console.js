// breakglass console: the one script. It improves pages that work without
// it (copy buttons, countdowns), and runs the WebAuthn ceremonies, which
// only a script can: the options come from the page's JSON data block, the
// authenticator's answer goes back in the page's form. No inline script
// anywhere (the Content-Security-Policy forbids it).
"use strict";

function left(ms) {
  if (ms <= 0) return "no time left";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return h + " h " + m + " min left";
  if (m > 0) return m + " min " + r + " s left";
  return r + " s left";
}

function tick() {
  for (const t of document.querySelectorAll("time[data-countdown]")) {
    const at = Date.parse(t.getAttribute("datetime"));
    if (!Number.isNaN(at)) t.textContent = left(at - Date.now());
  }
}

function fromB64url(s) {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out.buffer;
}

function toB64url(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const c of bytes) s += String.fromCharCode(c);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The ceremony of the page: create (register) or get (the others), then
// the answer as JSON in the form, which is sent.
async function ceremony(form, status) {
  const options = JSON.parse(document.getElementById("ceremony-options").textContent);
  const pk = options.publicKey;
  pk.challenge = fromB64url(pk.challenge);
  let answer;
  if (form.dataset.kind === "register") {
    pk.user.id = fromB64url(pk.user.id);
    for (const c of pk.excludeCredentials || []) c.id = fromB64url(c.id);
    const cred = await navigator.credentials.create({ publicKey: pk });
    answer = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(cred.response.attestationObject),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
      },
      extensions: {},
    };
  } else {
    for (const c of pk.allowCredentials || []) c.id = fromB64url(c.id);
    const cred = await navigator.credentials.get({ publicKey: pk });
    const r = cred.response;
    answer = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      extensions: {},
    };
  }
  status.textContent = "Sending…";
  document.getElementById("credential").value = JSON.stringify(answer);
  form.submit();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("ceremony");
  const use = document.getElementById("use-key");
  if (form && use) {
    const status = document.getElementById("ceremony-status");
    if (!window.PublicKeyCredential) {
      status.textContent = "This browser has no security-key support (WebAuthn): use a TOTP code instead.";
      use.disabled = true;
    }
    use.addEventListener("click", () => {
      status.textContent = "Waiting for your security key…";
      use.disabled = true;
      ceremony(form, status).catch((e) => {
        // NotAllowedError: cancelled, timed out, or the key could not
        // verify you. Nothing was sent; the ceremony may be tried again.
        status.textContent = "The security key did not answer (" + e.name + "): nothing was sent. " +
          "Unlock the key with its PIN or biometric and try again.";
        use.disabled = false;
      });
    });
  }
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.addEventListener("click", async () => {
      const el = document.getElementById(b.dataset.copy);
      if (!el) return;
      try {
        await navigator.clipboard.writeText(el.textContent);
        b.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        b.textContent = "Selected: copy it";
      }
    });
  }
  tick();
  setInterval(tick, 1000);
});
