import { createHmac } from 'node:crypto';
import type { AuditAction, AuditEvent, AuditSink } from '../audit.js';
import { constantTimeEqual, deriveKey } from '../crypto.js';
import type { MasterKeyRing } from '../env.js';
import { type AuthSecError, type AuthSecErrorCode, toAuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import { type Clock, isValidTenantId, type Logger } from '../types.js';
import { type AuditCheckpoint, type AuditCheckpointSink, signAuditCheckpoint } from './audit-checkpoints.js';
import { type Migration, migrateSchema, registerMigrations } from './migrations.js';
import type { SqlClient, SqlQueryable } from './sql.js';
import type { TenantHandle } from './tenancy-types.js';

/**
 * The tamper-evident audit log of each tenant: an append-only table whose rows each carry an HMAC-SHA256 over
 * their own fields, their sequence number, the tenant id and the previous row's MAC, keyed from the master key
 * ring. The chain head (last sequence number and MAC) is stored beside it, so that a modified, deleted or
 * truncated row is detected by {@link verifyAuditChain}. Rows are appended in batches, off the request path,
 * under a lock on the head row, so that several replicas writing to one tenant never fork the chain.
 *
 * What the chain cannot show on its own: someone with write access to the database who deletes the newest
 * rows *and* rewinds the head to the last remaining row (or empties the table and resets the head) leaves a
 * consistent chain behind. The sink therefore anchors each head outside the database: signed checkpoints
 * (`checkpointSinks`, see `audit-checkpoints.ts`), which `verifyAuditCheckpoints` and `authsec audit verify
 * --checkpoint <file>` compare with the chain.
 */

/** HKDF purpose of the chain keys; one key per ring key id. */
const MAC_PURPOSE = 'audit-chain';
/** Version tag inside every MAC input, so that a future row format can never collide with this one. */
const MAC_FORMAT = 'authsec-audit-v1';
/** Verification reads rows in pages of this size. */
const VERIFY_PAGE = 1000;
/** At most this many problems are listed by one verification (`ok` is false whatever the count). */
const MAX_PROBLEMS = 1000;
/** Tenants appended to at once by one flush. */
const TENANT_CONCURRENCY = 4;
/** Longest string stored in a text column; longer values are cut (audit rows must stay small). */
const MAX_TEXT = 4096;
const MAX_INT32 = 2_147_483_647;
// timestamptz accepts far more, but ISO strings outside years 0001-9999 are not portable.
const MIN_TIME_MS = -62_135_596_800_000;
const MAX_TIME_MS = 253_402_300_799_999;

/**
 * The migrations of the `audit` component (tenant scope): the event table, the chain head (created at seq 0)
 * and a trigger that refuses UPDATE, DELETE and TRUNCATE on the event table. The trigger is defence in depth
 * only: the table owner can disable it, and the chain is what detects tampering.
 */
export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    component: 'audit',
    version: 1,
    name: 'audit events and chain head',
    sql: (schema) => `
CREATE TABLE IF NOT EXISTS ${schema}.audit_events (
  seq bigint PRIMARY KEY,
  time timestamptz NOT NULL,
  action text NOT NULL,
  decision text NOT NULL,
  subject text NULL,
  client_id text NULL,
  target text NULL,
  reason text NULL,
  failed text[] NULL,
  arguments_digest text NULL,
  latency_micros integer NULL,
  key_id text NOT NULL,
  mac text NOT NULL
);
CREATE TABLE IF NOT EXISTS ${schema}.audit_head (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq bigint NOT NULL,
  mac text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ${schema}.audit_head (id, seq, mac) VALUES (true, 0, '') ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION ${schema}.audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS audit_events_append_only ON ${schema}.audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON ${schema}.audit_events
  FOR EACH ROW EXECUTE FUNCTION ${schema}.audit_events_append_only();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON ${schema}.audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON ${schema}.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.audit_events_append_only();
`,
  },
  {
    component: 'audit',
    version: 2,
    name: 'issuer of the subject',
    // Rows written before stay as they were (NULL): the log is append-only, and their MACs cover no issuer.
    sql: (schema) => `ALTER TABLE ${schema}.audit_events ADD COLUMN IF NOT EXISTS issuer text NULL;`,
  },
];

registerMigrations('tenant', AUDIT_MIGRATIONS);

/**
 * Creates the audit tables in schema `schemaName` (unquoted, e.g. `tenant_acme-corp`) by running only the
 * audit migrations. For tests and tools that use the audit store without the tenant registry; `authsec
 * migrate` runs the same migrations with every other tenant migration. Returns how many migrations ran.
 */
export function ensureAuditSchema(sql: SqlClient, schemaName: string): Promise<number> {
  return migrateSchema(sql, 'tenant', schemaName, AUDIT_MIGRATIONS);
}

/** An event reduced to exactly the stored columns, with values that survive a round trip unchanged. */
interface StoredFields {
  /** ISO-8601 with milliseconds, as inserted. */
  readonly time: string;
  /** Microseconds since the epoch, decimal: the driver-independent form the MAC covers. */
  readonly timeMicros: string;
  readonly action: string;
  readonly decision: string;
  readonly subject: string | null;
  /** The issuer of `subject`; `null` in rows written before issuers were recorded. */
  readonly issuer: string | null;
  readonly clientId: string | null;
  readonly target: string | null;
  readonly reason: string | null;
  readonly failed: readonly string[] | null;
  readonly argumentsDigest: string | null;
  readonly latencyMicros: number | null;
}

// PostgreSQL text cannot hold NUL, and lone UTF-16 surrogates turn into U+FFFD on the way to UTF-8: both are
// replaced before the MAC is computed, so the stored row verifies exactly.
function cleanText(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const cut = text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
  return Buffer.from(cut, 'utf8').toString('utf8').replaceAll('\u0000', '\uFFFD');
}

function optionalText(value: unknown): string | null {
  return value === undefined || value === null ? null : cleanText(value);
}

function normalize(event: AuditEvent, clock: Clock): StoredFields {
  const parsed = typeof event.time === 'string' ? Date.parse(event.time) : Number.NaN;
  const ms = Number.isNaN(parsed) || parsed < MIN_TIME_MS || parsed > MAX_TIME_MS ? clock() : parsed;
  const latency = event.latencyMicros;
  return {
    time: new Date(ms).toISOString(),
    timeMicros: (BigInt(ms) * 1000n).toString(),
    action: cleanText(event.action),
    decision: cleanText(event.decision),
    subject: optionalText(event.subject),
    issuer: optionalText(event.issuer),
    clientId: optionalText(event.clientId),
    target: optionalText(event.target),
    reason: optionalText(event.reason),
    failed: Array.isArray(event.failed) ? event.failed.map(cleanText) : null,
    argumentsDigest: optionalText(event.argumentsDigest),
    latencyMicros:
      typeof latency === 'number' && Number.isFinite(latency)
        ? Math.min(Math.max(Math.round(latency), 0), MAX_INT32)
        : null,
  };
}

function macOf(
  key: Uint8Array,
  prevMac: string,
  tenantId: string,
  seq: number,
  keyId: string,
  f: StoredFields,
) {
  const canonical = JSON.stringify([
    MAC_FORMAT,
    tenantId,
    String(seq),
    keyId,
    f.timeMicros,
    f.action,
    f.decision,
    f.subject,
    f.clientId,
    f.target,
    f.reason,
    f.failed,
    f.argumentsDigest,
    f.latencyMicros,
    // Covered only when present, so rows written before issuers were recorded verify as they always did.
    ...(f.issuer === null ? [] : [f.issuer]),
  ]);
  // prevMac is either '' (first row) or 64 hex characters, so the concatenation is unambiguous.
  return createHmac('sha256', key)
    .update(prevMac, 'utf8')
    .update('\n')
    .update(canonical, 'utf8')
    .digest('hex');
}

function keyCache(ring: MasterKeyRing): (kid: string) => Buffer | undefined {
  const keys = new Map<string, Buffer>();
  return (kid) => {
    let key = keys.get(kid);
    if (!key && ring.keys.has(kid)) {
      key = deriveKey(ring, MAC_PURPOSE, kid);
      keys.set(kid, key);
    }
    return key;
  };
}

const COLUMNS =
  'seq, time, action, decision, subject, client_id, target, reason, failed, arguments_digest, latency_micros, key_id, mac, issuer';
const TYPES = [
  'bigint',
  'timestamptz',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text[]',
  'text',
  'integer',
  'text',
  'text',
  'text',
];
// Selected so that both drivers return plain strings: seq and time as decimal text (time in microseconds).
// The output column `seq` is text, so queries must order by the table column (`e.seq`), never by `seq`.
const SELECT_FIELDS = `seq::text AS seq, round(extract(epoch FROM time) * 1000000)::bigint::text AS time_us, action,
  decision, subject, client_id, target, reason, failed, arguments_digest, latency_micros, issuer`;

interface EventRow {
  seq: string;
  time_us: string;
  action: string;
  decision: string;
  subject: string | null;
  client_id: string | null;
  target: string | null;
  reason: string | null;
  failed: string[] | null;
  arguments_digest: string | null;
  latency_micros: number | null;
  issuer: string | null;
}

function fieldsOfRow(row: EventRow): StoredFields {
  return {
    time: isoFromMicros(row.time_us),
    timeMicros: row.time_us,
    action: row.action,
    decision: row.decision,
    subject: row.subject,
    issuer: row.issuer ?? null,
    clientId: row.client_id,
    target: row.target,
    reason: row.reason,
    failed: row.failed,
    argumentsDigest: row.arguments_digest,
    latencyMicros: row.latency_micros === null ? null : Number(row.latency_micros),
  };
}

function isoFromMicros(micros: string): string {
  const us = BigInt(micros);
  let ms = us / 1000n;
  if (us % 1000n < 0n) ms -= 1n;
  const date = new Date(Number(ms));
  return Number.isNaN(date.getTime()) ? micros : date.toISOString();
}

/**
 * Appends `batch` to the tenant's chain in one transaction. The head row is locked first (`FOR UPDATE`), so
 * appenders on every replica take turns and each continues from the head the previous one committed.
 */
async function appendBatch(
  handle: TenantHandle,
  batch: readonly StoredFields[],
  keyId: string,
  key: Uint8Array,
  logger: Logger,
): Promise<{ seq: number; mac: string }> {
  const s = handle.schema;
  const tenantId = handle.tenant.id;
  return handle.sql.transaction(async (tx) => {
    const lockHead = () =>
      tx.query<{ seq: string; mac: string }>(
        `SELECT seq::text AS seq, mac FROM ${s}.audit_head WHERE id FOR UPDATE`,
      );
    let head = (await lockHead()).rows[0];
    if (!head) {
      // The migration creates the row; recreate it if it was removed (concurrent creators wait on the key).
      await tx.query(
        `INSERT INTO ${s}.audit_head (id, seq, mac) VALUES (true, 0, '') ON CONFLICT (id) DO NOTHING`,
      );
      head = (await lockHead()).rows[0];
      if (!head) throw new Error('audit head row could not be created');
    }
    const last = (
      await tx.query<{ seq: string; mac: string }>(
        `SELECT seq::text AS seq, mac FROM ${s}.audit_events e ORDER BY e.seq DESC LIMIT 1`,
      )
    ).rows[0];
    let seq = Number(head.seq);
    let prev = head.mac;
    const lastSeq = last ? Number(last.seq) : 0;
    if (lastSeq !== seq) {
      // The head and the table disagree: someone edited one of them. Continue after the higher of the two so
      // that appending neither fails forever nor closes the gap that is the evidence of the tampering.
      logger.error('Audit chain head does not match the last audit row; run `authsec audit verify`', {
        tenantId,
        headSeq: seq,
        lastSeq,
      });
      if (last && lastSeq > seq) {
        seq = lastSeq;
        prev = last.mac;
      }
    }
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const f of batch) {
      seq += 1;
      const mac = macOf(key, prev, tenantId, seq, keyId, f);
      const base = values.length;
      tuples.push(`(${TYPES.map((type, i) => `$${base + i + 1}::${type}`).join(', ')})`);
      values.push(
        String(seq),
        f.time,
        f.action,
        f.decision,
        f.subject,
        f.clientId,
        f.target,
        f.reason,
        f.failed === null ? null : [...f.failed],
        f.argumentsDigest,
        f.latencyMicros,
        keyId,
        mac,
        f.issuer,
      );
      prev = mac;
    }
    await tx.query(`INSERT INTO ${s}.audit_events (${COLUMNS}) VALUES ${tuples.join(', ')}`, values);
    await tx.query(`UPDATE ${s}.audit_head SET seq = $1::bigint, mac = $2, updated_at = now() WHERE id`, [
      String(seq),
      prev,
    ]);
    return { seq, mac: prev };
  });
}

/** Options of {@link createPostgresAuditSink}. */
export interface PostgresAuditSinkOptions {
  /**
   * Finds a tenant's data, normally `tenancy.handle`. A `TENANT_UNKNOWN` refusal means the events of that
   * tenant cannot be chained anywhere: they are skipped with a warning (pass a resolver that also opens
   * disabled tenants to keep their last events). Any other failure keeps the events buffered for a retry.
   */
  readonly resolve: (tenantId: string) => Promise<TenantHandle>;
  /** The master key ring; rows are MACed with a key derived from its active key and name that key's id. */
  readonly masterKey: MasterKeyRing;
  /**
   * Most events per transaction (1 to 1000). Default 1000 (`maxBuffer` when smaller): under load every round
   * trip waits behind the requests, so few large transactions keep up where many small ones fall behind.
   * Reaching it also starts a flush early; below it, the timer writes whatever is buffered.
   */
  readonly batchSize?: number;
  /** Milliseconds between background flushes (and retries while the database is down). Default 200. */
  readonly flushIntervalMs?: number;
  /**
   * Events waiting to be written at which the sink stops {@link AuditSink.accepting}: the engine then refuses
   * new decisions (503) until writes catch up. Buffered events are never evicted. Events still written after
   * that (decisions already under way, writers that do not go through the engine) are kept up to twice
   * `maxBuffer`; only past that is an event lost (counted in `dropped`, logged as an error). Default 10000.
   */
  readonly maxBuffer?: number;
  /**
   * Milliseconds writes may fail (or one write may hang) before the sink stops accepting and the engine refuses
   * decisions with `SERVICE_UNAVAILABLE`; it accepts again as soon as a write pass succeeds (the events buffered
   * meanwhile are written first). A long pass through a backlog whose writes (batches) each complete is not
   * trouble: only the oldest write still waiting counts (a backlog is bounded by `maxBuffer` instead). Default 5000. Higher keeps serving through longer outages with more events
   * only in memory (lost if the process dies); lower refuses sooner.
   */
  readonly refuseAfterMs?: number;
  /**
   * Where signed checkpoints of every chain head this sink appended go (see `createFileCheckpointSink`,
   * `createStreamCheckpointSink`): without them a log cut from its end and rewound, or emptied, still
   * verifies. Written every `checkpointIntervalMs` for the tenants appended to since the last one, and on
   * `close()`. Default: none.
   */
  readonly checkpointSinks?: readonly AuditCheckpointSink[];
  /** Milliseconds between checkpoints. Default 60000. */
  readonly checkpointIntervalMs?: number;
  /** Where failures, drops and recoveries are logged. Default: JSON lines on stderr. */
  readonly logger?: Logger;
  /**
   * Time source for events whose `time` is not a valid ISO-8601 instant, for `refuseAfterMs` and for checkpoint
   * times. Default `Date.now`.
   */
  readonly clock?: Clock;
}

/** A snapshot of {@link PostgresAuditSink.state}, for health checks and metrics. */
export interface PostgresAuditSinkState {
  /** Whether the sink accepts new events (see {@link AuditSink.accepting}). */
  readonly accepting: boolean;
  /** Since when (ISO-8601) writes have been failing, or `null` while they succeed. */
  readonly failingSince: string | null;
  /** Events accepted and not yet written (queue depth). */
  readonly buffered: number;
  /** Events written to their tenant's chain. */
  readonly written: number;
  /** Decisions the engine refused because the sink was not accepting. */
  readonly refused: number;
  /** Events lost; stays 0 unless writers ignore `accepting` past twice `maxBuffer`, or write after `close()`. */
  readonly dropped: number;
  /** Events not meant for this store (see {@link PostgresAuditSink.skipped}). */
  readonly skipped: number;
  /** Checkpoints delivered to every checkpoint sink. */
  readonly checkpoints: number;
}

/** The sink {@link createPostgresAuditSink} returns: an {@link AuditSink} with counters for monitoring. */
export interface PostgresAuditSink extends AuditSink {
  /**
   * False once writes have failed for `refuseAfterMs`, while `maxBuffer` events wait, and after `close()`: the
   * engine then refuses decisions. True again as soon as a write pass succeeds.
   */
  readonly accepting: boolean;
  /** Counts one decision refused by the engine because the sink was not accepting. */
  recordRefusal(): void;
  /** Every counter at once. */
  state(): PostgresAuditSinkState;
  /** Events written to their tenant's chain. */
  readonly written: number;
  /** Decisions the engine refused because the sink was not accepting. */
  readonly refused: number;
  /**
   * Events lost: written past twice `maxBuffer` by writers that ignore `accepting`, written after `close()`, or
   * that could not be buffered at all. Buffered events are never evicted.
   */
  readonly dropped: number;
  /**
   * Events not meant for this store: without a (valid) tenant id, or of a tenant that `resolve` refuses with
   * `TENANT_UNKNOWN`. Send them to another sink (for example JSON lines) if they matter.
   */
  readonly skipped: number;
  /** Events accepted and not yet written. */
  readonly buffered: number;
}

interface Pending {
  /** Acceptance order, to keep "oldest first" when failed events are put back. */
  readonly n: number;
  readonly tenantId: string;
  readonly fields: StoredFields;
}

function positiveInteger(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new TypeError(`createPostgresAuditSink: ${name} must be an integer from 1 to ${max}`);
  }
  return v;
}

function mergeByN(a: readonly Pending[], b: readonly Pending[]): Pending[] {
  const out: Pending[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.n < b[j]!.n)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

/**
 * An {@link AuditSink} that appends each tenant's events to its HMAC chain in PostgreSQL (or PGlite).
 *
 * `write` only buffers: it never awaits and never throws. A timer (every `flushIntervalMs`) writes the buffer
 * in the background, grouped by tenant, `batchSize` events per transaction. Each transaction locks the
 * tenant's chain head, so several processes writing to one tenant never fork the chain. While the database is
 * unreachable the events stay buffered and are retried on every tick; they are never evicted. Once writes have
 * failed for `refuseAfterMs`, or `maxBuffer` events wait, the sink stops {@link AuditSink.accepting} and the
 * engine refuses decisions with `SERVICE_UNAVAILABLE` (503) instead of making decisions it cannot record; the
 * first write pass that succeeds (buffered events first) ends that. Events without a tenant id are skipped
 * (debug log): they belong to no tenant's chain. Delivery is at least once: a commit whose acknowledgement is
 * lost is written again under a new sequence number.
 *
 * With `checkpointSinks`, the sink signs the head of every chain it appended to and writes it there every
 * `checkpointIntervalMs` and on `close()`, anchoring the chains outside the database.
 *
 * `flush()` writes everything accepted before the call and rejects with `SERVICE_UNAVAILABLE` when the
 * database is down (the events stay buffered). `close()` stops the timers, flushes and writes the last
 * checkpoints; later writes are dropped.
 */
export function createPostgresAuditSink(options: PostgresAuditSinkOptions): PostgresAuditSink {
  if (typeof options?.resolve !== 'function')
    throw new TypeError('createPostgresAuditSink: resolve is required');
  const ring = options.masterKey;
  if (!ring?.keys?.has(ring.activeKid)) {
    throw new TypeError('createPostgresAuditSink: masterKey must contain its active key');
  }
  const flushIntervalMs = positiveInteger('flushIntervalMs', options.flushIntervalMs, 200, 3_600_000);
  const maxBuffer = positiveInteger('maxBuffer', options.maxBuffer, 10_000, 100_000_000);
  // Large by default: a busy event loop delays each of a transaction's round trips, so a backlog written 100
  // events at a time fell behind a loaded server; at 1000 it kept up. Never above maxBuffer.
  const batchSize = positiveInteger('batchSize', options.batchSize, Math.min(1000, maxBuffer), 1000);
  if (maxBuffer < batchSize)
    throw new TypeError('createPostgresAuditSink: maxBuffer must be at least batchSize');
  const refuseAfterMs = positiveInteger('refuseAfterMs', options.refuseAfterMs, 5000, 86_400_000);
  const checkpointIntervalMs = positiveInteger(
    'checkpointIntervalMs',
    options.checkpointIntervalMs,
    60_000,
    86_400_000,
  );
  const checkpointSinks = options.checkpointSinks ?? [];
  if (!Array.isArray(checkpointSinks) || checkpointSinks.some((c) => typeof c?.write !== 'function')) {
    throw new TypeError('createPostgresAuditSink: checkpointSinks must be checkpoint sinks');
  }
  // Past `maxBuffer` decisions are refused; this bounds memory for writers that do not ask first.
  const hardLimit = maxBuffer * 2;
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? Date.now;
  const resolve = options.resolve;
  const keyId = ring.activeKid;
  const key = deriveKey(ring, MAC_PURPOSE, keyId);

  let buffer: Pending[] = [];
  let inFlight = 0;
  /** Events the pass under way has written so far (already taken off `inFlight`). */
  let writtenInPass = 0;
  let accepted = 0;
  let written = 0;
  let refused = 0;
  let dropped = 0;
  let skipped = 0;
  let dropsLogged = 0;
  let closed = false;
  let failing = false;
  /** When the current run of failed write passes began (the start of the first failed pass). */
  let failingSince: number | undefined;
  /**
   * When each write of the pass under way (one per tenant worker: resolving a tenant, or one batch) began. A
   * pass through a large backlog may take long while every write completes: only a write that does not is
   * trouble, so the oldest write still waiting is what counts toward `refuseAfterMs`, not the pass's start.
   */
  const writeStartedAt: (number | undefined)[] = new Array(TENANT_CONCURRENCY).fill(undefined);
  let refusingLogged = false;
  let cyclesQueued = 0;
  let chain: Promise<unknown> = Promise.resolve();
  /** The newest head this sink appended, per tenant, and the seq of its last delivered checkpoint. */
  const heads = new Map<string, { seq: number; mac: string }>();
  const anchored = new Map<string, number>();
  let checkpointsWritten = 0;
  let checkpointChain: Promise<void> = Promise.resolve();

  const pending = () => buffer.length + inFlight;

  // Read before every decision: a few comparisons, no allocation.
  const isAccepting = (): boolean => {
    if (closed || pending() >= maxBuffer) return false;
    let troubleSince = failingSince;
    if (troubleSince === undefined) {
      for (const at of writeStartedAt)
        if (at !== undefined && (troubleSince === undefined || at < troubleSince)) troubleSince = at;
    }
    return troubleSince === undefined || clock() - troubleSince < refuseAfterMs;
  };

  const reportDrops = () => {
    if (dropped === dropsLogged) return;
    logger.error('Audit events were dropped: the buffer is past twice maxBuffer (is the database down?)', {
      dropped: dropped - dropsLogged,
      totalDropped: dropped,
      maxBuffer,
    });
    dropsLogged = dropped;
  };

  const reportAccepting = () => {
    const acceptingNow = isAccepting();
    if (!acceptingNow && !refusingLogged && !closed) {
      refusingLogged = true;
      logger.error('The audit log stopped accepting events: decisions are refused (503) until it recovers', {
        buffered: pending(),
        maxBuffer,
        failingForMs: failingSince === undefined ? undefined : clock() - failingSince,
        refuseAfterMs,
      });
    } else if (acceptingNow && refusingLogged) {
      refusingLogged = false;
      logger.info('The audit log accepts events again', { written, refused, buffered: pending() });
    }
  };

  const noteHead = (tenantId: string, head: { seq: number; mac: string }) => {
    const known = heads.get(tenantId);
    if (!known || head.seq > known.seq) heads.set(tenantId, head);
  };

  /** Signs and delivers a checkpoint of every head appended since the last one. Never rejects. */
  const writeCheckpoints = (): Promise<void> => {
    if (checkpointSinks.length === 0) return Promise.resolve();
    const run = checkpointChain.then(async () => {
      const due: AuditCheckpoint[] = [];
      const timeMs = clock();
      for (const [tenant, head] of heads) {
        if ((anchored.get(tenant) ?? 0) < head.seq) {
          due.push(signAuditCheckpoint(ring, { tenant, seq: head.seq, mac: head.mac, timeMs }));
        }
      }
      if (due.length === 0) return;
      const results = await Promise.allSettled(checkpointSinks.map((c) => c.write(due)));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) {
        // Retried at the next checkpoint: the heads stay due.
        logger.error('Audit checkpoints could not be written; retried at the next checkpoint', {
          cause: String(failure.reason),
          tenants: due.length,
        });
        return;
      }
      for (const c of due) anchored.set(c.tenant, c.seq);
      checkpointsWritten += due.length;
    });
    checkpointChain = run.catch((error: unknown) => {
      logger.error('Audit checkpoints could not be signed', { error: toAuthSecError(error).message });
    });
    return checkpointChain;
  };

  /** Appends one tenant's events in batches (worker `slot`); returns those not written and why. */
  const appendTenant = async (
    tenantId: string,
    entries: readonly Pending[],
    slot: number,
  ): Promise<{ rest: readonly Pending[]; error: AuthSecError | undefined }> => {
    let handle: TenantHandle;
    writeStartedAt[slot] = clock();
    try {
      handle = await resolve(tenantId);
    } catch (error) {
      const err = toAuthSecError(error);
      if (err.code === 'TENANT_UNKNOWN') {
        skipped += entries.length;
        logger.warn('Audit events of an unknown or disabled tenant were not stored', {
          tenantId,
          count: entries.length,
        });
        return { rest: [], error: undefined };
      }
      return { rest: entries, error: err };
    }
    for (let i = 0; i < entries.length; i += batchSize) {
      const batch = entries.slice(i, i + batchSize);
      writeStartedAt[slot] = clock();
      try {
        const head = await appendBatch(
          handle,
          batch.map((p) => p.fields),
          keyId,
          key,
          logger,
        );
        written += batch.length;
        // Written: no longer pending, even while the rest of the pass goes on (queue depth, maxBuffer).
        inFlight -= batch.length;
        writtenInPass += batch.length;
        noteHead(tenantId, head);
      } catch (error) {
        return { rest: entries.slice(i), error: toAuthSecError(error) };
      }
    }
    return { rest: [], error: undefined };
  };

  /** One pass over everything buffered. Never rejects; resolves to the first failure, if any. */
  const runCycle = async (): Promise<AuthSecError | undefined> => {
    const taken = buffer;
    buffer = [];
    inFlight += taken.length;
    const startedAt = clock();
    writtenInPass = 0;
    const byTenant = new Map<string, Pending[]>();
    for (const p of taken) {
      const list = byTenant.get(p.tenantId);
      if (list) list.push(p);
      else byTenant.set(p.tenantId, [p]);
    }
    const tenants = [...byTenant];
    const failed: Pending[] = [];
    let firstError: AuthSecError | undefined;
    let next = 0;
    const worker = async (slot: number) => {
      while (next < tenants.length) {
        const [tenantId, entries] = tenants[next++]!;
        const { rest, error } = await appendTenant(tenantId, entries, slot).catch((e: unknown) => ({
          rest: entries,
          error: toAuthSecError(e),
        }));
        failed.push(...rest);
        if (
          error &&
          (!firstError || (error.code === 'SERVICE_UNAVAILABLE' && firstError.code !== error.code))
        ) {
          firstError = error;
        }
      }
      // Done: this worker's last write completed and must not count as one still waiting.
      writeStartedAt[slot] = undefined;
    };
    await Promise.all(
      Array.from({ length: Math.min(TENANT_CONCURRENCY, tenants.length) }, (_, slot) => worker(slot)),
    );
    inFlight -= taken.length - writtenInPass;
    writeStartedAt.fill(undefined);
    if (failed.length > 0) {
      failed.sort((a, b) => a.n - b.n);
      buffer = mergeByN(failed, buffer);
    }
    if (firstError) failingSince ??= startedAt;
    else if (taken.length > 0) failingSince = undefined;
    if (firstError && !failing) {
      failing = true;
      logger.error('Audit events could not be written; they stay buffered and are retried', {
        code: firstError.code,
        buffered: buffer.length,
      });
    } else if (firstError) {
      logger.debug('Audit events still cannot be written', {
        code: firstError.code,
        buffered: buffer.length,
      });
    } else if (failing && taken.length > 0) {
      failing = false;
      logger.info('Audit events are being written again', { buffered: buffer.length });
    }
    reportAccepting();
    return firstError;
  };

  // Cycles run one after another, so that each tenant's events reach its chain in the order they were written.
  const enqueueCycle = (): Promise<AuthSecError | undefined> => {
    cyclesQueued++;
    const run = chain.then(runCycle).finally(() => {
      cyclesQueued--;
    });
    chain = run;
    return run;
  };

  const tick = () => {
    reportDrops();
    reportAccepting();
    if (cyclesQueued === 0 && buffer.length > 0) void enqueueCycle();
  };
  const timer = setInterval(tick, flushIntervalMs);
  timer.unref();
  const checkpointTimer =
    checkpointSinks.length > 0 ? setInterval(() => void writeCheckpoints(), checkpointIntervalMs) : undefined;
  checkpointTimer?.unref();

  const flush = async (): Promise<void> => {
    const error = await enqueueCycle();
    reportDrops();
    if (error) throw error;
  };

  return {
    get accepting() {
      return isAccepting();
    },
    recordRefusal() {
      refused++;
    },
    state() {
      return {
        accepting: isAccepting(),
        failingSince: failingSince === undefined ? null : new Date(failingSince).toISOString(),
        buffered: pending(),
        written,
        refused,
        dropped,
        skipped,
        checkpoints: checkpointsWritten,
      };
    },
    get written() {
      return written;
    },
    get refused() {
      return refused;
    },
    get dropped() {
      return dropped;
    },
    get skipped() {
      return skipped;
    },
    get buffered() {
      return pending();
    },
    write(event: AuditEvent): void {
      try {
        if (closed) {
          dropped++;
          logger.warn('Audit event written after close() was dropped');
          return;
        }
        if (pending() >= hardLimit) {
          // Never evict what is buffered: the new event is the one lost, counted (and logged by the timer).
          dropped++;
          return;
        }
        const tenantId = event.tenantId;
        if (!isValidTenantId(tenantId)) {
          skipped++;
          logger.debug('Audit event without a valid tenant id is not stored in the tenant audit log');
          return;
        }
        buffer.push({ n: accepted++, tenantId, fields: normalize(event, clock) });
        if (buffer.length >= batchSize && cyclesQueued === 0 && !failing) void enqueueCycle();
      } catch (error) {
        // The request path must never fail because of auditing.
        dropped++;
        logger.error('Audit event could not be buffered', { error: toAuthSecError(error).message });
      }
    },
    flush,
    async close(): Promise<void> {
      closed = true;
      clearInterval(timer);
      if (checkpointTimer) clearInterval(checkpointTimer);
      try {
        await flush();
      } finally {
        // Anchor what was written, even when the last flush failed.
        await writeCheckpoints();
      }
    },
  };
}

/** What kind of damage {@link verifyAuditChain} found. */
export type AuditProblemKind = 'modified' | 'missing' | 'truncated' | 'head_mismatch' | 'unknown_key';

/** One problem found by {@link verifyAuditChain}. */
export interface AuditProblem {
  /** The row concerned (for `missing` and `truncated`: the first absent seq); `null` for the head itself. */
  readonly seq: number | null;
  readonly kind: AuditProblemKind;
  /** Human-readable explanation. Never contains event contents. */
  readonly detail: string;
}

/** The outcome of {@link verifyAuditChain}. */
export interface AuditVerifyResult {
  /** True when every row verified and the head matches the last row. */
  readonly ok: boolean;
  /** Rows examined. */
  readonly rows: number;
  /** The first 1000 problems, in seq order (head problems last). */
  readonly problems: readonly AuditProblem[];
  /** How many problems were found in all (may exceed `problems.length`). */
  readonly problemCount: number;
  /** The stored chain head at verification time (to anchor elsewhere), or `null` when it is missing. */
  readonly head: { readonly seq: number; readonly mac: string } | null;
}

function describeKid(kid: string): string {
  return JSON.stringify(kid.length > 64 ? `${kid.slice(0, 64)}…` : kid);
}

/**
 * Recomputes a tenant's audit chain in seq order, in pages of 1000 rows inside one read-only snapshot, and
 * reports every row whose MAC does not match (`modified`), every gap in the sequence (`missing`), rows cut
 * from the end (`truncated`), a head that does not match the last row (`head_mismatch`) and rows sealed with a
 * key id absent from `masterKey` (`unknown_key`; keep retired keys in the ring to verify old rows). MACs are
 * compared in constant time. Database failures reject (`SERVICE_UNAVAILABLE` when unreachable).
 */
export async function verifyAuditChain(
  handle: TenantHandle,
  masterKey: MasterKeyRing,
): Promise<AuditVerifyResult> {
  const s = handle.schema;
  const tenantId = handle.tenant.id;
  const keyFor = keyCache(masterKey);
  const problems: AuditProblem[] = [];
  let problemCount = 0;
  const report = (seq: number | null, kind: AuditProblemKind, detail: string) => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push({ seq, kind, detail });
  };

  return handle.sql.transaction(async (tx: SqlQueryable) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const headRow = (
      await tx.query<{ seq: string; mac: string }>(
        `SELECT seq::text AS seq, mac FROM ${s}.audit_head WHERE id`,
      )
    ).rows[0];
    const head = headRow ? { seq: Number(headRow.seq), mac: headRow.mac } : null;

    let rows = 0;
    let expected = 1;
    let prevMac = '';
    let lastSeq = 0;
    let lastMac = '';
    let cursor = '-9223372036854775808';
    for (;;) {
      const page = await tx.query<EventRow & { key_id: string; mac: string }>(
        `SELECT ${SELECT_FIELDS}, key_id, mac FROM ${s}.audit_events e WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT ${VERIFY_PAGE}`,
        [cursor],
      );
      for (const row of page.rows) {
        rows++;
        const seq = Number(row.seq);
        let checkable = true;
        if (seq > expected) {
          report(
            expected,
            'missing',
            seq - expected === 1
              ? `row ${expected} is missing`
              : `rows ${expected} to ${seq - 1} are missing`,
          );
          // The MAC of this row covers a predecessor we no longer have: resume the chain from its stored MAC.
          checkable = false;
        } else if (seq < expected) {
          report(seq, 'modified', `row ${seq} has a sequence number the chain never issues`);
          checkable = false;
        }
        if (checkable) {
          const key = keyFor(row.key_id);
          if (!key) {
            report(
              seq,
              'unknown_key',
              `row ${seq} is sealed with key id ${describeKid(row.key_id)}, not in the key ring`,
            );
          } else if (
            !constantTimeEqual(macOf(key, prevMac, tenantId, seq, row.key_id, fieldsOfRow(row)), row.mac)
          ) {
            report(seq, 'modified', `row ${seq} does not match its MAC (edited, moved or re-sealed)`);
          }
        }
        prevMac = row.mac;
        lastSeq = seq;
        lastMac = row.mac;
        cursor = row.seq;
        expected = Math.max(expected, seq + 1);
      }
      if (page.rows.length < VERIFY_PAGE) break;
    }

    if (!head) {
      report(null, 'head_mismatch', 'the chain head is missing');
    } else if (head.seq > lastSeq) {
      report(
        lastSeq + 1,
        'truncated',
        `the head is at row ${head.seq} but the last row is ${lastSeq}: rows ${lastSeq + 1} to ${head.seq} are gone`,
      );
    } else if (head.seq < lastSeq) {
      report(null, 'head_mismatch', `the head is at row ${head.seq} but the table ends at row ${lastSeq}`);
    } else if (!constantTimeEqual(head.mac, lastMac)) {
      report(null, 'head_mismatch', `the head MAC does not match row ${lastSeq}`);
    }
    return { ok: problemCount === 0, rows, problems, problemCount, head };
  });
}

/** Options of {@link readAuditEvents}. */
export interface ReadAuditEventsOptions {
  /** Return rows with a seq greater than this. Default 0 (from the start). */
  readonly afterSeq?: number;
  /** Rows at most. Default 100; values above 1000 are reduced to 1000. */
  readonly limit?: number;
}

/** A stored audit event with its place in the chain. */
export type StoredAuditEvent = AuditEvent & { readonly seq: number };

/**
 * Reads a tenant's audit events in seq order (for `authsec audit tail`): the {@link AuditEvent} fields as
 * stored, `tenantId` from the handle, plus `seq`. Reading does not verify; use {@link verifyAuditChain}.
 * A non-integer or negative `afterSeq`, or a `limit` below 1, is a `TypeError`.
 */
export async function readAuditEvents(
  handle: TenantHandle,
  options: ReadAuditEventsOptions = {},
): Promise<StoredAuditEvent[]> {
  const afterSeq = options.afterSeq ?? 0;
  const limit = options.limit ?? 100;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
    throw new TypeError('readAuditEvents: afterSeq must be a non-negative integer');
  }
  if (!Number.isInteger(limit) || limit < 1)
    throw new TypeError('readAuditEvents: limit must be a positive integer');
  const result = await handle.sql.query<EventRow>(
    `SELECT ${SELECT_FIELDS} FROM ${handle.schema}.audit_events e WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT $2::integer`,
    [String(afterSeq), Math.min(limit, 1000)],
  );
  return result.rows.map((row) => {
    const f = fieldsOfRow(row);
    return {
      seq: Number(row.seq),
      time: f.time,
      action: f.action as AuditAction,
      decision: f.decision as AuditEvent['decision'],
      subject: f.subject ?? undefined,
      ...(f.issuer === null ? {} : { issuer: f.issuer }),
      tenantId: handle.tenant.id,
      clientId: f.clientId ?? undefined,
      target: f.target ?? undefined,
      reason: (f.reason ?? undefined) as AuthSecErrorCode | undefined,
      failed: f.failed ?? undefined,
      argumentsDigest: f.argumentsDigest ?? undefined,
      latencyMicros: f.latencyMicros ?? undefined,
    };
  });
}

/**
 * The tenant's chain head: the last appended seq and its MAC (seq 0 and an empty MAC before the first event),
 * or `null` when the head row is missing. Cheap; for `audit tail` (start near the end) and for anchoring the
 * chain outside the database.
 */
export async function readAuditHead(handle: TenantHandle): Promise<{ seq: number; mac: string } | null> {
  const row = (
    await handle.sql.query<{ seq: string; mac: string }>(
      `SELECT seq::text AS seq, mac FROM ${handle.schema}.audit_head WHERE id`,
    )
  ).rows[0];
  return row ? { seq: Number(row.seq), mac: row.mac } : null;
}
