export { buildGateway, type Gateway, type GatewayOptions } from "./app.js";
export { readGatewayConfig, GATEWAY_DEFAULTS, type GatewayConfig } from "./config.js";
