/**
 * The only module that reads `process.env`. Everything else receives an
 * `Env` object, so configuration is parsed once and tests can pass their own.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export function processEnv(): Env {
  return { ...process.env };
}
