// Herald demo page: a small, readable example of @herald/client in a browser.
// The SDK is served by scripts/demo-server.mjs from packages/client/dist at /sdk/.
import { HeraldClient, decodeBase64 } from "/sdk/index.js";
import { mountPresence } from "/presence.js";

const MAX_MESSAGES = 200;
const $ = (id) => document.getElementById(id);

const config = await fetch("/config.json", { cache: "no-store" }).then((r) => r.json());
const channelsWanted = config.channels?.length ? config.channels : ["demo"];

// A static token, or a provider that asks the demo server for a fresh one.
const token = config.tokenUrl
  ? () => fetch(config.tokenUrl, { cache: "no-store" }).then((r) => (r.ok ? r.text() : Promise.reject(new Error(`token endpoint: HTTP ${r.status}`))))
  : config.token;

const client = new HeraldClient({ url: config.gatewayUrl, token });
window.heraldClient = client; // handy in the devtools console
const presence = mountPresence(client, $("presence"));

// ---- connection state ------------------------------------------------------

let retryTimer;
client.on("state", ({ state, error, retryInMs, transport }) => {
  const pill = $("state");
  pill.dataset.state = state;
  // Which way the page got through: "websocket", or "sse" where a proxy refuses WebSocket.
  if (transport) pill.dataset.transport = transport;
  clearInterval(retryTimer);
  if (state === "reconnecting" && retryInMs !== undefined) {
    const at = Date.now() + retryInMs;
    const tick = () => (pill.textContent = `reconnecting in ${Math.max(0, (at - Date.now()) / 1000).toFixed(1)} s`);
    tick();
    retryTimer = setInterval(tick, 100);
  } else {
    pill.textContent = state === "connected" && transport ? `connected (${transport === "sse" ? "SSE" : "WebSocket"})` : state;
  }
  $("toggle").textContent = state === "closed" || state === "idle" ? "Connect" : "Disconnect";
  if (state === "connected") {
    $("who").textContent = `as ${client.session?.sub ?? "?"}`;
    showNotice("");
  }
  if (error) log(`${state}: ${error.message}`);
  if (state === "closed" && error) showNotice(`Disconnected for good: ${error.message}`);
  renderChannels();
});

client.on("error", (err) => log(`error (${err.code}): ${err.message}`));
client.on("recovered", ({ channel, recovered }) => {
  if (!recovered) log(`some messages on ${channel} were missed while offline and are no longer available`);
});
client.on("subscribed", renderChannels);
client.on("unsubscribed", ({ channel, error }) => {
  if (error) log(`subscription to ${channel} ended: ${error.message}`);
  renderChannels();
});

$("toggle").addEventListener("click", () => {
  if (client.state === "closed" || client.state === "idle") client.connect().catch(() => {});
  else client.close();
});

// ---- messages ---------------------------------------------------------------

let count = 0;
client.on("message", (msg) => {
  const li = document.createElement("li");
  li.className = "message";
  if (msg.channel) li.dataset.channel = msg.channel;
  const meta = document.createElement("div");
  meta.className = "meta";
  const where = document.createElement("span");
  where.className = "channel";
  where.textContent = msg.channel ?? `direct → ${msg.user}`;
  const when = document.createElement("time");
  when.textContent = new Date().toLocaleTimeString();
  meta.append(where, when);
  if (msg.seq !== undefined) {
    const seq = document.createElement("span");
    seq.textContent = `#${msg.seq}`;
    meta.append(seq);
  }
  const body = document.createElement("pre");
  body.className = "data";
  body.textContent = formatData(msg);
  li.append(meta, body);
  const list = $("messages");
  list.prepend(li);
  while (list.children.length > MAX_MESSAGES) list.lastElementChild.remove();
  $("count").textContent = String(++count);
  $("messages-empty").hidden = true;
});

$("clear").addEventListener("click", () => {
  $("messages").replaceChildren();
  count = 0;
  $("count").textContent = "0";
  $("messages-empty").hidden = false;
});

function formatData(msg) {
  if (msg.encoding === "base64") {
    const bytes = decodeBase64(msg.data);
    return `(${bytes.length} bytes, binary) ${msg.data}`;
  }
  return typeof msg.data === "string" ? msg.data : JSON.stringify(msg.data, null, 2);
}

// ---- channels ---------------------------------------------------------------

function renderChannels() {
  const list = $("channels");
  const names = client.channels;
  list.replaceChildren(
    ...names.map((name) => {
      const li = document.createElement("li");
      li.dataset.channel = name;
      li.dataset.active = String(client.isActive(name));
      li.title = client.isActive(name) ? "subscribed" : "waiting for the server";
      const label = document.createElement("span");
      label.textContent = name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Unsubscribe from ${name}`);
      remove.addEventListener("click", () => client.unsubscribe(name).catch((e) => log(e.message)).finally(renderChannels));
      li.append(label, remove);
      return li;
    }),
  );
  $("channels-empty").hidden = names.length > 0;
  $("presence-h").hidden = names.length === 0;
  presence.sync();
  $("channel-list").replaceChildren(...names.map((n) => Object.assign(document.createElement("option"), { value: n })));
}

async function subscribe(channel) {
  const pending = client.subscribe(channel);
  renderChannels();
  try {
    await pending;
  } catch (err) {
    log(`cannot subscribe to ${channel}: ${err.message}`);
  }
  renderChannels();
}

$("subscribe-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("subscribe-channel");
  const channel = input.value.trim();
  if (!channel) return;
  input.value = "";
  void subscribe(channel);
  if (!$("publish-channel").value) $("publish-channel").value = channel;
});

// ---- publish ----------------------------------------------------------------

$("publish-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const channel = $("publish-channel").value.trim();
  const raw = $("publish-data").value;
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    data = raw; // plain text is sent as a JSON string
  }
  const status = $("publish-status");
  const button = $("publish-button");
  button.disabled = true;
  status.textContent = client.state === "connected" ? "sending…" : "queued until connected…";
  try {
    await client.publish(channel, data);
    status.textContent = `published to ${channel} ✓`;
  } catch (err) {
    status.textContent = `not published: ${err.message}`;
  } finally {
    button.disabled = false;
  }
});

// ---- misc ---------------------------------------------------------------------

function log(text) {
  $("log").textContent = `${new Date().toLocaleTimeString()} — ${text}`;
}

function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

const first = channelsWanted[0];
$("publish-channel").value = first;
$("curl").textContent = config.publisherUrl
  ? `curl -X POST ${config.publisherUrl}/v1/channels/${first}/messages \\\n  -H "Authorization: Bearer $PUBLISHER_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '{"text":"hello from curl"}'`
  : "The publisher URL is not configured.";

client.connect().catch((err) => showNotice(`Could not connect: ${err.message}`));
for (const channel of channelsWanted) void subscribe(channel);
