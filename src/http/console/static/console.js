// breakglass console: the one script. It only improves pages that work
// without it: copy buttons and countdowns. No inline script anywhere (the
// Content-Security-Policy forbids it).
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

document.addEventListener("DOMContentLoaded", () => {
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
