export { buildPublisher, MAX_SUB_LENGTH, SERVER_TIMEOUTS } from "./app.js";
export type { ListenResult, Publisher, PublisherOptions } from "./app.js";
export { PUBLISHER_DEFAULTS, PUBLISHER_LIMITS, readPublisherConfig } from "./config.js";
export type { PublisherConfig } from "./config.js";
export { ALL_USERS_GRANT, USER_GRANT_PREFIX, type Principal } from "./auth.js";
