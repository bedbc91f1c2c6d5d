/** Structured logger of every transport; a pino logger fits (`(obj, msg)`). */
export interface WireLogger {
  debug?(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Warnings and errors to console.warn, each line prefixed with `[prefix]`; debug and info dropped. */
export function consoleLogger(prefix: string): WireLogger {
  return {
    warn: (obj, msg) => console.warn(`[${prefix}] ${msg}`, obj),
    error: (obj, msg) => console.warn(`[${prefix}] ${msg}`, obj),
  };
}

/** Says nothing. */
export const silentLogger: WireLogger = { warn: () => {}, error: () => {} };

/** The `logger` option of a transport: a logger, `false` for silence, or absent for the console. */
export function resolveLogger(opt: WireLogger | false | undefined, prefix: string): WireLogger {
  return opt === false ? silentLogger : (opt ?? consoleLogger(prefix));
}
