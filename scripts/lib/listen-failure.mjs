/**
 * One line for a port `npm start` cannot listen on. A newcomer whose port
 * 8080 is taken by something else should read which port, which service and
 * which variable moves it, not a stack trace (issue 8).
 */

/**
 * @param {object} where
 * @param {string} where.service   "gateway", "publisher", "demo page"
 * @param {string} where.variable  the setting that moves it, e.g. GATEWAY_PORT
 * @param {string} where.host      the interface it tried
 * @param {number} where.port      the port it tried
 * @param {unknown} err            what listen() threw
 * @returns {string}
 */
export function listenFailure({ service, variable, host, port }, err) {
  const code = /** @type {{ code?: unknown }} */ (err)?.code;
  // Node's http server says why; uWebSockets.js only reports that it failed.
  const why =
    code === "EADDRINUSE" ? "the port is already in use"
    : code === "EACCES" ? "not permitted (ports below 1024 need privileges)"
    : typeof code === "string" ? `listen failed (${code})`
    : "the port is in use or not permitted";
  const shown = host.includes(":") ? `[${host}]` : host;
  return `herald: cannot listen on ${shown}:${port} for the ${service}: ${why}; set ${variable} to a free port (or stop what holds it)`;
}
