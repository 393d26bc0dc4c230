// Votes waiting for the server. Kept in localStorage (per study and user) so that neither a network outage
// nor a crashed or closed tab loses an answer; sent in order and retried with back-off until acknowledged.
// The server is idempotent, so sending an answer twice is harmless.

function csrfFromCookie() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Outbox {
  constructor(key, csrfFallback, onState) {
    this.key = key;
    this.csrfFallback = csrfFallback;
    this.onState = onState || (() => {});
    this.items = this.load();
    this.sending = null;
    this.delay = 1000;
    this.retryTimer = null;
    this.state = { pending: this.items.length, failing: false, reason: "", closed: null, rejected: null };
  }
  load() {
    try { return JSON.parse(localStorage.getItem(this.key) || "[]"); } catch { return []; }
  }
  save() {
    try { localStorage.setItem(this.key, JSON.stringify(this.items)); } catch { /* private mode: memory only */ }
  }
  pending() { return this.items.length; }
  report(extra) {
    Object.assign(this.state, extra, { pending: this.items.length });
    this.onState(this.state);
  }
  add(url, body, position) {
    // The latest answer for an item replaces one still waiting.
    this.items = this.items.filter((e) => e.url !== url);
    this.items.push({ url, body, position, queuedAt: Date.now() });
    this.save();
    this.report({ rejected: null });
    return this.flush();
  }
  flush() {
    if (!this.sending) this.sending = this.sendAll().finally(() => { this.sending = null; });
    return this.sending;
  }
  async sendAll() {
    clearTimeout(this.retryTimer);
    while (this.items.length) {
      const entry = this.items[0];
      let r;
      try {
        r = await fetch(entry.url, {
          method: "POST", credentials: "same-origin", redirect: "manual",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfFromCookie() || this.csrfFallback() },
          body: JSON.stringify(entry.body),
        });
      } catch {
        return this.fail("the network is unreachable");
      }
      if (r.type === "opaqueredirect" || r.status === 0) return this.fail("you are logged out: log in again and they will be sent");
      if (r.ok) {
        this.items.shift();
        this.save();
        this.delay = 1000;
        this.report({ failing: false, reason: "" });
        continue;
      }
      const data = await r.json().catch(() => ({}));
      const message = data.error || `the server refused answer ${entry.position} (HTTP ${r.status})`;
      if (r.status >= 500 || r.status === 403 || r.status === 408 || r.status === 429) {
        return this.fail(`the server answered HTTP ${r.status}`);
      }
      // A definitive refusal (closed study, invalid answer): retrying cannot help, so say so and drop it.
      this.items.shift();
      this.save();
      this.report(data.closed ? { closed: message, failing: false } : { rejected: `Answer ${entry.position}: ${message}`, failing: false });
    }
    return true;
  }
  fail(reason) {
    this.report({ failing: true, reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), this.delay);
    this.delay = Math.min(this.delay * 2, 15000);
    return false;
  }
  // Resolves once every queued answer is acknowledged (or refused for good).
  async drain() {
    while (this.items.length) {
      await this.flush();
      if (this.items.length) await sleep(Math.min(this.delay, 3000));
    }
  }
}
