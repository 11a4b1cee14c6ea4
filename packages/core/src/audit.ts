import { hash } from 'node:crypto';
import type { AuthSecErrorCode } from './errors.js';

/**
 * Audit events: one per decision, login or admin change. An event never holds a token, a secret value or a
 * claim set: arguments are reduced to a digest, the caller to its subject, tenant and client.
 */

/** What happened. */
export type AuditAction =
  | 'authenticate'
  | 'tool.list'
  | 'tool.call'
  | 'resource.read'
  | 'prompt.get'
  | 'login'
  | 'logout'
  | 'service.read'
  | 'admin.change';

/** One audit record. */
export interface AuditEvent {
  /** ISO-8601 time of the decision. */
  readonly time: string;
  readonly action: AuditAction;
  /** `allow`, `deny`, or `error` when a dependency failed. */
  readonly decision: 'allow' | 'deny' | 'error';
  /** The caller's subject (pseudonymised when configured), or `undefined` when unauthenticated. */
  readonly subject: string | undefined;
  readonly tenantId: string | undefined;
  readonly clientId: string | undefined;
  /** Tool, service or admin target. */
  readonly target: string | undefined;
  /** The error code when refused or failed. */
  readonly reason: AuthSecErrorCode | undefined;
  /** Which requirement categories failed, e.g. `['roles', 'scopes']`. */
  readonly failed: readonly string[] | undefined;
  /** SHA-256 (hex) of the canonical JSON of the arguments; never the arguments themselves. */
  readonly argumentsDigest: string | undefined;
  /** Time the decision took, microseconds. */
  readonly latencyMicros: number | undefined;
}

/** Where audit events go. `write` must not throw on the request path; `flush`/`close` may. */
export interface AuditSink {
  /** Accepts one event. Must be cheap: batch and write off the request path. */
  write(event: AuditEvent): void;
  /** Writes everything accepted so far. */
  flush(): Promise<void>;
  /** Flushes and releases resources. */
  close(): Promise<void>;
}

function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** SHA-256 hex digest of the canonical JSON form of `args` (key order does not matter). */
export function digestArguments(args: unknown): string {
  // Tools without arguments are the common case: their digest is a constant.
  if (isEmptyObject(args)) return EMPTY_OBJECT_DIGEST;
  // One-shot `hash`: no Hash object per call, on the path of every audited tool call.
  return hash('sha256', canonical(args), 'hex');
}

/** No own enumerable key: what `canonical` writes as `{}`. */
function isEmptyObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const key in value) if (Object.hasOwn(value, key)) return false;
  return true;
}

const EMPTY_OBJECT_DIGEST = hash('sha256', '{}', 'hex');

/** Keeps events in memory, for tests and for callers that inspect decisions. */
export class MemoryAuditSink implements AuditSink {
  /** Every event written, oldest first. */
  readonly events: AuditEvent[] = [];
  write(event: AuditEvent): void {
    this.events.push(event);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Options of {@link createJsonLinesAuditSink}. */
export interface JsonLinesAuditSinkOptions {
  /** Where lines go. Default: `process.stderr` (stdout belongs to MCP under stdio). */
  readonly stream?: { write(chunk: string): unknown };
  /** Events buffered before a write. Default 64; a timer also flushes every 250 ms. */
  readonly batchSize?: number;
}

/** Writes one JSON object per line, batched off the request path. */
export function createJsonLinesAuditSink(options: JsonLinesAuditSinkOptions = {}): AuditSink {
  const stream = options.stream ?? process.stderr;
  const batchSize = options.batchSize ?? 64;
  let buffer: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flushNow = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (buffer.length === 0) return;
    const chunk = buffer.join('');
    buffer = [];
    stream.write(chunk);
  };
  return {
    write(event) {
      buffer.push(`${JSON.stringify({ type: 'audit', ...event })}\n`);
      if (buffer.length >= batchSize) flushNow();
      else if (!timer) {
        timer = setTimeout(flushNow, 250);
        timer.unref();
      }
    },
    async flush() {
      flushNow();
    },
    async close() {
      flushNow();
    },
  };
}
