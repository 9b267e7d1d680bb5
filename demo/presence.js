// Who is on each subscribed channel, for the demo page (README "Presence").
//
// A channel's list is loaded with presence pages once the server confirms the
// subscription, then kept current from the Subscription's join/leave events.
// Every POLL_MS a presence_stats call checks the counts: a list that no longer
// matches them is loaded again (a namespace with presence but no join_leave,
// a lost event), and above JOIN_LEAVE_LIMIT members (no join/leave frames
// there) only the counts are shown, refreshed by that poll.

const JOIN_LEAVE_LIMIT = 1000;
const POLL_MS = 5000;

/**
 * Keeps one member list per channel of `client` inside `container`.
 * Call sync() whenever the client's channels may have changed.
 */
export function mountPresence(client, container) {
  /** channel → Panel */
  const panels = new Map();

  client.on("subscribed", ({ channel }) => {
    const panel = panels.get(channel);
    if (panel?.mode === "waiting") panel.load();
  });
  client.on("state", ({ state }) => {
    if (state !== "connected") for (const panel of panels.values()) panel.reset();
  });

  function sync() {
    const wanted = client.channels;
    for (const [channel, panel] of panels) {
      if (!wanted.includes(channel) || client.subscription(channel) !== panel.handle) {
        panel.destroy();
        panels.delete(channel);
      }
    }
    for (const channel of wanted) {
      if (panels.has(channel)) continue;
      const handle = client.subscription(channel);
      if (!handle) continue;
      const panel = new Panel(client, channel, handle);
      panels.set(channel, panel);
      if (client.isActive(channel)) panel.load();
    }
    container.replaceChildren(...wanted.filter((c) => panels.has(c)).map((c) => panels.get(c).el));
  }

  return { sync };
}

class Panel {
  constructor(client, channel, handle) {
    this.client = client;
    this.channel = channel;
    this.handle = handle;
    /** waiting (no confirmed subscription) | loading | live | large | off | error */
    this.mode = "waiting";
    /** Bumped whenever a load's answers stop counting (new load, reset, destroy). */
    this.gen = 0;
    /** connection → { sub, info }, in join order */
    this.members = new Map();
    /** The last counts from the server (large mode). */
    this.stats = { clients: 0, users: 0 };
    this.note = "";

    this.el = el("section", "presence");
    this.el.dataset.channel = channel;
    this.el.setAttribute("aria-label", `Who is on ${channel}`);
    const head = el("div", "presence-head");
    const name = el("span", "presence-channel", channel);
    this.countsEl = el("span", "presence-counts muted small");
    this.countsEl.setAttribute("aria-live", "polite");
    head.append(name, this.countsEl);
    this.listEl = el("ul", "members");
    this.listEl.setAttribute("aria-label", `Members of ${channel}`);
    this.noteEl = el("p", "presence-note muted small");
    this.el.append(head, this.listEl, this.noteEl);

    this.offJoin = handle.onJoin((e) => {
      if (this.mode !== "loading" && this.mode !== "live") return;
      this.members.set(e.connection, { sub: e.sub, info: e.info });
      this.render();
    });
    this.offLeave = handle.onLeave((e) => {
      if (this.mode !== "loading" && this.mode !== "live") return;
      if (this.members.delete(e.connection)) this.render();
    });
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.render();
  }

  /**
   * Loads the list page by page. Join/leave events that arrive meanwhile are
   * applied as they come: answers and events share one connection, in order,
   * so each page already reflects every event that arrived before it.
   */
  async load() {
    const gen = ++this.gen;
    this.members.clear();
    this.mode = "loading";
    this.note = "";
    this.render();
    try {
      let cursor = null;
      do {
        const page = await this.client.presence(this.channel, cursor);
        if (gen !== this.gen) return;
        if (page.clients > JOIN_LEAVE_LIMIT) return this.showLarge(page);
        for (const m of page.members) this.members.set(m.connection, { sub: m.sub, info: m.info });
        cursor = page.cursor;
      } while (cursor !== null);
      this.mode = "live";
    } catch (err) {
      if (gen !== this.gen) return;
      this.failed(err);
    }
    this.render();
  }

  /** Counts only: above the limit the server sends no join/leave frames. */
  showLarge(stats) {
    this.mode = "large";
    this.members.clear();
    this.stats = { clients: stats.clients, users: stats.users };
    this.note = `More than ${JOIN_LEAVE_LIMIT} members: no live joins and leaves here, the counts refresh every ${POLL_MS / 1000} s.`;
    this.render();
  }

  failed(err) {
    this.members.clear();
    if (err?.code === "forbidden" && /presence is off/.test(err.message)) {
      this.mode = "off";
      this.note = "presence is off for this namespace";
    } else {
      this.mode = "error";
      this.note = `member list unavailable (${err?.message ?? err}); retrying`;
    }
  }

  async poll() {
    if (this.client.state !== "connected") return;
    if (this.mode === "error") return void this.load();
    if (this.mode !== "live" && this.mode !== "large") return;
    const gen = this.gen;
    let stats;
    try {
      stats = await this.client.presenceStats(this.channel);
    } catch {
      return; // the next poll, or the next subscribe, tries again
    }
    if (gen !== this.gen) return;
    if (this.mode === "large") {
      if (stats.clients > JOIN_LEAVE_LIMIT) return this.showLarge(stats);
      return void this.load(); // small again: back to a live list
    }
    const { clients, users } = this.counts();
    if (stats.clients !== clients || stats.users !== users) void this.load();
  }

  /** The subscription is not (or no longer) confirmed: forget the list until it is. */
  reset() {
    this.gen++;
    this.members.clear();
    this.mode = "waiting";
    this.note = "";
    this.render();
  }

  destroy() {
    this.gen++;
    clearInterval(this.timer);
    this.offJoin();
    this.offLeave();
  }

  counts() {
    if (this.mode === "large") return this.stats;
    return { clients: this.members.size, users: new Set([...this.members.values()].map((m) => m.sub)).size };
  }

  render() {
    this.el.dataset.mode = this.mode;
    const showList = this.mode === "live" || this.mode === "loading";
    if (showList || this.mode === "large") {
      const { clients, users } = this.counts();
      this.countsEl.textContent = `${plural(clients, "client")} · ${plural(users, "user")}`;
    } else {
      this.countsEl.textContent = "";
    }

    // One row per user, in join order, with how many connections it has here.
    const mine = this.client.session?.connection;
    const bySub = new Map();
    if (showList) {
      for (const [connection, m] of this.members) {
        const row = bySub.get(m.sub) ?? { sub: m.sub, name: undefined, connections: 0, you: false };
        row.connections++;
        row.name ??= nameOf(m.info);
        row.you ||= connection === mine;
        bySub.set(m.sub, row);
      }
    }
    this.listEl.hidden = !showList;
    this.listEl.replaceChildren(
      ...[...bySub.values()].map((row) => {
        const li = el("li", "member");
        li.dataset.sub = row.sub;
        li.append(el("span", "member-name", row.name ?? row.sub));
        if (row.name !== undefined && row.name !== row.sub) li.append(el("span", "muted small", row.sub));
        if (row.connections > 1) li.append(el("span", "badge", `×${row.connections}`, `${row.connections} connections`));
        if (row.you) li.append(el("span", "muted small", "(you)"));
        return li;
      }),
    );

    const note = this.note || (this.mode === "waiting" ? "waiting for the subscription…" : this.mode === "loading" ? "loading members…" : "");
    this.noteEl.textContent = note;
    this.noteEl.hidden = !note;
  }
}

function nameOf(info) {
  return info && typeof info === "object" && typeof info.name === "string" && info.name !== "" ? info.name : undefined;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function el(tag, className, text, label) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  if (label) node.setAttribute("aria-label", label);
  return node;
}
