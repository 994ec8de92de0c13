/**
 * The service's structured logs: one JSON object per line (pino) on stdout, for the API and the worker alike.
 * Redaction is the logger's own job, not each caller's: pino's redact paths remove credential-bearing fields
 * (Authorization headers, passwords, tokens) wherever callers put them, and a formatter runs every string that
 * is logged through lib/logs/redact (signed S3/Azure/GCS URLs and the configured secret values) and masks
 * `Bearer`/`Basic` credentials quoted inside text. So a careless `logger.info({ url }, …)` cannot leak a presigned
 * URL, and a request's headers can be logged as they are.
 */
import pino, { type DestinationStream, type Level, type Logger as PinoLogger } from 'pino';
import { redact } from '../logs/redact';

export type Logger = PinoLogger;
export const LOG_LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export interface LoggerOptions {
  /** LOG_LEVEL; `info` by default. */
  level?: string;
  /** Values masked wherever they appear (the configuration's secrets). */
  secrets?: readonly string[];
  /** Where lines go; stdout by default. Tests hand in a stream they read back. */
  destination?: DestinationStream;
  /** Fields on every line, e.g. `{ service: 'api' }`. */
  base?: Record<string, unknown>;
}

const MASK = '[redacted]';

/** Fields whose value is a credential whatever it holds, at any of the depths callers nest them. */
const SECRET_KEYS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'password', 'token', 'accessToken', 'refreshToken', 'secret', 'secretAccessKey', 'sessionToken', 'apiKey', 'auth', 'identitytoken', 'registrytoken', 'x-amz-security-token'];
const REDACT_PATHS = SECRET_KEYS.flatMap((key) => {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
  const dot = k.startsWith('[') ? k : `.${k}`;
  return [k, `*${dot}`, `*.*${dot}`, `*.*.*${dot}`];
});
/** Any field named like a credential, in any spelling (`refresh_token`, `X-Registry-Auth`, `clientSecret`). */
function isSecretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z]/g, '');
  return k === 'auth' || /(password|passwd|token|secret|secretkey|accesskey|apikey|authorization|cookie|registryauth)$/.test(k);
}

/** `Authorization: Bearer …`/`Basic …` quoted inside a message or an error's text. */
const HTTP_CREDENTIAL = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g;

export function scrubText(text: string, secrets: readonly string[]): string {
  return redact(text, secrets).replace(HTTP_CREDENTIAL, `$1 ${MASK}`);
}

/** Deep copy with every string scrubbed and credential-named fields masked; bounded so a cycle cannot hang it. */
export function scrubValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value, secrets);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, secrets, depth + 1));
  if (value instanceof Date) return value;
  // An Error's message and stack are not enumerable: serialize it first, then scrub what it says.
  if (value instanceof Error) return scrubValue(pino.stdSerializers.err(value), secrets, depth);
  if (value instanceof Headers) return scrubValue(Object.fromEntries(value.entries()), secrets, depth);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = isSecretKey(key) && v !== undefined && v !== null && v !== '' ? MASK : scrubValue(v, secrets, depth + 1);
  }
  return out;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = options.secrets ?? [];
  const serializeError = (err: unknown) => scrubValue(pino.stdSerializers.err(err as Error), secrets);
  return pino(
    {
      level: options.level ?? 'info',
      base: options.base ?? null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: MASK },
      serializers: { err: serializeError, error: serializeError },
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrubValue(object, secrets) as Record<string, unknown>,
      },
      hooks: {
        // Messages are text too: a URL or a header quoted in one is scrubbed like any field.
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubText(a, secrets) : a)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** The message of anything thrown, for a log line's `msg` (the error itself goes in `err`). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
