/**
 * The logging surface every component takes by injection. It is pino's call shape
 * (`log.info({ fields }, "event_name")`), so a pino logger satisfies it, and the simulator can
 * pass a silent or recording logger. Events are snake_case names, not prose (STYLE.md rule 15).
 */
export interface Logger {
  debug(fields: Record<string, unknown>, event: string): void;
  info(fields: Record<string, unknown>, event: string): void;
  warn(fields: Record<string, unknown>, event: string): void;
  error(fields: Record<string, unknown>, event: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything: the default in tests and the simulator's hot loop. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
