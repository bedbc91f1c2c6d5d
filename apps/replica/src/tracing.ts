/**
 * Which tracing `decree start` registers: the config file's `tracing` section, overridden by the
 * flags --trace, --trace-ratio, --otlp-endpoint, --otlp-header. Pure (no OTel SDK loaded here).
 */
import type { ClusterConfig } from './config.ts';

export type ResolvedTracing = { ratio: number } & (
  | { exporter: 'console' }
  | { exporter: 'otlp'; endpoint?: string; headers?: Record<string, string> }
);

export interface TracingFlags {
  trace?: string;
  traceRatio?: string;
  otlpEndpoint?: string;
  otlpHeader?: string[];
}

const EXPORTERS = ['console', 'otlp'] as const;
// an HTTP header name (RFC 9110 token)
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * `{ tracing }` (undefined: tracing off) or `{ error }`: one line naming the flag. The config file
 * was validated by parseConfig already.
 */
export function resolveTracing(
  file: ClusterConfig['tracing'],
  flags: TracingFlags,
): { tracing: ResolvedTracing | undefined } | { error: string } {
  if (flags.trace !== undefined && !(EXPORTERS as readonly string[]).includes(flags.trace))
    return { error: `--trace: unknown exporter "${flags.trace}" (${EXPORTERS.join(', ')})` };
  let ratio = file?.ratio ?? 1;
  if (flags.traceRatio !== undefined) {
    ratio = flags.traceRatio.trim() === '' ? NaN : Number(flags.traceRatio);
    if (!(ratio >= 0 && ratio <= 1))
      return { error: `--trace-ratio: must be a number in 0..1, got "${flags.traceRatio}"` };
  }
  const exporter = (flags.trace as (typeof EXPORTERS)[number] | undefined) ?? file?.exporter;
  const otlpFlag =
    flags.otlpEndpoint !== undefined ? '--otlp-endpoint' : flags.otlpHeader?.length ? '--otlp-header' : undefined;
  if (exporter === undefined) {
    const given = otlpFlag ?? (flags.traceRatio !== undefined ? '--trace-ratio' : undefined);
    return given
      ? { error: `${given}: needs --trace (or a "tracing" section in the config file)` }
      : { tracing: undefined };
  }
  if (exporter === 'console') {
    if (otlpFlag) return { error: `${otlpFlag}: only with --trace otlp` };
    return { tracing: { exporter, ratio } };
  }
  // otlp: the flags override the file's endpoint; headers merge (a flag wins over the file's same name)
  const fromFile = file?.exporter === 'otlp' ? file : undefined;
  let endpoint = fromFile?.endpoint;
  if (flags.otlpEndpoint !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(flags.otlpEndpoint);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:'))
      return {
        error: `--otlp-endpoint: must be an http:// or https:// URL (e.g. http://collector:4318/v1/traces), got "${flags.otlpEndpoint}"`,
      };
    endpoint = flags.otlpEndpoint;
  }
  const headers: Record<string, string> = { ...(fromFile?.headers ?? {}) };
  for (const h of flags.otlpHeader ?? []) {
    const eq = h.indexOf('=');
    const name = eq > 0 ? h.slice(0, eq).trim() : '';
    if (!HEADER_NAME.test(name)) return { error: `--otlp-header: expected name=value, got "${h}"` };
    headers[name] = h.slice(eq + 1).trim();
  }
  return {
    tracing: {
      exporter,
      ratio,
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(Object.keys(headers).length ? { headers } : {}),
    },
  };
}
