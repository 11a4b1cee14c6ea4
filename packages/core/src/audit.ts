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
  | 'tool.condition'
  | 'tool.confirm'
  | 'resource.read'
  | 'prompt.get'
  | 'route.access'
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
  /**
   * The issuer of `subject` (the principal's `issuer`): with the subject it names the person, since the same
   * `sub` from another trusted issuer is someone else. `undefined` when unauthenticated.
   */
  readonly issuer?: string | undefined;
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

/**
 * Where audit events go. `write` must not throw on the request path; `flush`/`close` may.
 *
 * A sink that can fall behind (a database, a remote collector) implements `accepting` so that the engine never
 * makes a decision the sink cannot record: see {@link AuditSink.accepting}.
 */
export interface AuditSink {
  /** Accepts one event. Must be cheap: batch and write off the request path. */
  write(event: AuditEvent): void;
  /** Writes everything accepted so far. */
  flush(): Promise<void>;
  /** Flushes and releases resources. */
  close(): Promise<void>;
  /**
   * Backpressure, optional. Read by the engine before every decision (`authenticate`, `authorize`,
   * `authorizeTool`) and by `readiness()`; while it is `false`, the engine refuses decisions with
   * `SERVICE_UNAVAILABLE` (503) instead of making decisions that would go unrecorded, and readiness reports
   * `audit: 'unavailable'`. Must be cheap (a field read): it is on the path of every request. Absent: the sink
   * is always accepting.
   */
  readonly accepting?: boolean;
  /**
   * Optional: called once for every decision the engine refused because {@link AuditSink.accepting} was
   * `false`, so that the sink can count refusals beside its other counters. Must not throw.
   */
  recordRefusal?(): void;
}

// Markers for what JSON cannot hold. None is valid JSON where a value starts, so none can stand for a JSON value.
// A cycle (only an in-process caller can build one) is written as a back-reference instead of being unrolled.
const CYCLE = '<cycle>';
// Past this many characters the text is cut and marked: a JSON request body never comes close, but an
// in-process value that shares subtrees (a DAG) can expand exponentially when written out as a tree.
const MAX_CANONICAL_CHARS = 64 * 1024 * 1024;
const TRUNCATED = '<truncated>';
// Depth the recursive fast path handles. Beyond it (or past the size cap) the iterative form takes over;
// a cycle always goes deeper than this, so the fast path needs no cycle tracking.
const FAST_PATH_DEPTH = 64;

function primitive(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  return JSON.stringify(value) ?? 'null';
}

// The canonical form (see `canonical`) by recursion, or `undefined` when `value` is deeper than
// FAST_PATH_DEPTH or writes out longer than the cap. Every real argument object takes this path.
function shallowCanonical(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value !== 'object') return primitive(value);
  if (depth === FAST_PATH_DEPTH) return undefined;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item: unknown = value[i];
      if (item === undefined && !(i in value)) continue;
      const text = shallowCanonical(item, depth + 1);
      if (text === undefined) return undefined;
      out += text;
      if (out.length > MAX_CANONICAL_CHARS) return undefined;
    }
    return `${out}]`;
  }
  const keys = Object.keys(value).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const text = shallowCanonical((value as Record<string, unknown>)[key], depth + 1);
    if (text === undefined) return undefined;
    out += `${i > 0 ? ',' : ''}${JSON.stringify(key)}:${text}`;
    if (out.length > MAX_CANONICAL_CHARS) return undefined;
  }
  return `${out}}`;
}

/** An array or object being written: its sorted own keys (objects only) and the next position. */
interface Frame {
  readonly container: object;
  readonly keys: string[] | undefined;
  readonly length: number;
  index: number;
}

// The canonical form of any value, iteratively: an explicit stack instead of the call stack, since 5,000
// nested arrays are only a 10 KB request body. Ancestors are tracked so that a cycle ends in CYCLE; a value
// merely shared by two branches is written in both, like a copy.
function deepCanonical(root: unknown): string {
  const frames: Frame[] = [];
  const open = new Set<object>();
  let out = '';
  let value: unknown = root;
  for (;;) {
    if (value === null || typeof value !== 'object') out += primitive(value);
    else if (open.has(value)) out += CYCLE;
    else if (Array.isArray(value)) {
      open.add(value);
      frames.push({ container: value, keys: undefined, length: value.length, index: 0 });
      out += '[';
    } else {
      const keys = Object.keys(value).sort();
      open.add(value);
      frames.push({ container: value, keys, length: keys.length, index: 0 });
      out += '{';
    }
    if (out.length > MAX_CANONICAL_CHARS) return out + TRUNCATED;
    // Close every finished container, then take the next member of the innermost open one.
    let frame = frames[frames.length - 1];
    for (;;) {
      if (frame === undefined) return out;
      if (frame.index < frame.length) {
        const index = frame.index++;
        if (index > 0) out += ',';
        if (frame.keys === undefined) {
          value = (frame.container as unknown[])[index];
          if (value === undefined && !(index in frame.container)) continue;
        } else {
          const key = frame.keys[index]!;
          out += `${JSON.stringify(key)}:`;
          value = (frame.container as Record<string, unknown>)[key];
        }
        break;
      }
      out += frame.keys === undefined ? ']' : '}';
      open.delete(frame.container);
      frames.pop();
      frame = frames[frames.length - 1];
    }
  }
}

/**
 * Canonical JSON: object keys sorted, `undefined` (and functions, symbols) as `null`, array holes as nothing
 * (as `Array.prototype.join` writes them), `bigint` as `<digits>n`, a cycle as `<cycle>`. Identical, for every
 * value the earlier recursive form could write, to what it wrote: stored digests stay comparable.
 */
function canonical(value: unknown): string {
  return shallowCanonical(value, 0) ?? deepCanonical(value);
}

/**
 * SHA-256 hex digest of the canonical JSON form of `args` (key order does not matter). Total for every JSON
 * value at any depth, and for cyclic values, `bigint`s, functions and symbols from in-process callers. It reads
 * the value, so a getter or proxy that throws when read makes it throw: the engine records the decision
 * without a digest then.
 */
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
