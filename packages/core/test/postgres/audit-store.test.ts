import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/audit.js';
import type { MasterKeyRing } from '../../src/env.js';
import { AuthSecError } from '../../src/errors.js';
import {
  createPostgresAuditSink,
  ensureAuditSchema,
  type PostgresAuditSinkOptions,
  readAuditEvents,
  readAuditHead,
  verifyAuditChain,
} from '../../src/postgres/audit-store.js';
import { createPgClient, type SqlClient } from '../../src/postgres/sql.js';
import type { TenantHandle } from '../../src/postgres/tenancy-types.js';
import type { Logger } from '../../src/types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

const EVENT_COLUMNS = [
  'seq',
  'time',
  'action',
  'decision',
  'subject',
  'client_id',
  'target',
  'reason',
  'failed',
  'arguments_digest',
  'latency_micros',
  'key_id',
  'mac',
  'issuer',
];

function ring(...kids: string[]): MasterKeyRing {
  return { activeKid: kids[0]!, keys: new Map(kids.map((kid) => [kid, keyBytes(kid)])) };
}
const KEYS = new Map<string, Uint8Array>();
function keyBytes(kid: string): Uint8Array {
  let key = KEYS.get(kid);
  if (!key) {
    key = new Uint8Array(randomBytes(32));
    KEYS.set(kid, key);
  }
  return key;
}

function event(tenantId: string | undefined, i: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(),
    action: 'tool.call',
    decision: i % 3 === 0 ? 'deny' : 'allow',
    subject: `user-${i}`,
    tenantId,
    clientId: 'client-1',
    target: `t${i}`,
    reason: i % 3 === 0 ? 'PERMISSION_DENIED' : undefined,
    failed: i % 3 === 0 ? ['roles', 'scopes'] : undefined,
    argumentsDigest: 'a'.repeat(64),
    latencyMicros: i,
    ...overrides,
  };
}

interface CapturedLog {
  level: string;
  message: string;
  fields: Record<string, unknown> | undefined;
}
function captureLogger(): Logger & { lines: CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

let tenantCounter = 0;

describe.each(TEST_DATABASES)('postgres audit store ($name)', ({ create }) => {
  let db: TestDatabase;
  let sql: SqlClient;
  const opened: SqlClient[] = [];

  beforeAll(async () => {
    db = await create();
    sql = await db.open();
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(opened.map((c) => c.close()));
    await db?.dispose();
  }, 60_000);

  /** A fresh tenant with its own audit tables, so each test has a chain of its own. */
  async function tenant(
    client: SqlClient = sql,
    id = `t-${++tenantCounter}-${randomBytes(3).toString('hex')}`,
  ) {
    await ensureAuditSchema(client, `tenant_${id}`);
    const handle: TenantHandle = {
      tenant: { id, status: 'active', placement: 'schema', createdAt: new Date() },
      sql: client,
      schema: `"tenant_${id}"`,
    };
    return handle;
  }

  function sink(handles: TenantHandle | TenantHandle[], options: Partial<PostgresAuditSinkOptions> = {}) {
    const list = Array.isArray(handles) ? handles : [handles];
    return createPostgresAuditSink({
      resolve: async (id) => {
        const found = list.find((h) => h.tenant.id === id);
        if (!found) throw new AuthSecError('TENANT_UNKNOWN', 'Unknown tenant');
        return found;
      },
      masterKey: ring('k1'),
      flushIntervalMs: 60_000,
      logger: captureLogger(),
      ...options,
    });
  }

  async function count(handle: TenantHandle): Promise<number> {
    const r = await handle.sql.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${handle.schema}.audit_events`,
    );
    return Number(r.rows[0]!.n);
  }

  /** What an attacker with table-owner rights does first: switch off the append-only trigger. */
  async function tamper(handle: TenantHandle, statement: string, params: unknown[] = []) {
    await handle.sql.query(`ALTER TABLE ${handle.schema}.audit_events DISABLE TRIGGER USER`);
    await handle.sql.query(statement, params);
    await handle.sql.query(`ALTER TABLE ${handle.schema}.audit_events ENABLE TRIGGER USER`);
  }

  async function seeded(n: number) {
    const handle = await tenant();
    const s = sink(handle, { batchSize: 3 });
    for (let i = 1; i <= n; i++) s.write(event(handle.tenant.id, i));
    await s.close();
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: n });
    return handle;
  }

  it('creates only the audit tables, idempotently', async () => {
    const handle = await tenant();
    expect(await ensureAuditSchema(sql, `tenant_${handle.tenant.id}`)).toBe(0);
    const columns = await sql.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'audit_events'
       ORDER BY ordinal_position`,
      [`tenant_${handle.tenant.id}`],
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(EVENT_COLUMNS);
    expect(await readAuditHead(handle)).toEqual({ seq: 0, mac: '' });
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 0, problems: [] });
  });

  it('buffers on write, appends in batches of batchSize, reads back in order with seq, and verifies', async () => {
    const handle = await tenant();
    let transactions = 0;
    const counted: TenantHandle = {
      ...handle,
      sql: {
        ...handle.sql,
        transaction: (fn) => {
          transactions++;
          return handle.sql.transaction(fn);
        },
      },
    };
    const s = sink(counted, { batchSize: 7 });
    const events = Array.from({ length: 25 }, (_, i) => event(handle.tenant.id, i + 1));
    for (const e of events) expect(s.write(e)).toBeUndefined();
    expect(s.buffered).toBe(25);
    await s.flush();
    expect(s.buffered).toBe(0);
    expect(transactions).toBe(4);

    const stored = await readAuditEvents(handle, { limit: 1000 });
    expect(stored.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(stored.map(({ seq: _seq, ...rest }) => rest)).toEqual(events);
    expect(await readAuditHead(handle)).toMatchObject({ seq: 25 });
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result).toMatchObject({ ok: true, rows: 25, problems: [], problemCount: 0 });
    expect(result.head?.seq).toBe(25);
    await s.close();
  });

  it('writes a backlog in transactions of up to 1000 events by default, and never more than maxBuffer', async () => {
    // Under load a busy event loop delays every round trip of a transaction: the audit log keeps up only if a
    // backlog takes few transactions (at 100 per transaction it fell behind a 2-core server at ~600 calls/s).
    const handle = await tenant();
    let transactions = 0;
    const counted: TenantHandle = {
      ...handle,
      sql: {
        ...handle.sql,
        transaction: (fn) => {
          transactions++;
          return handle.sql.transaction(fn);
        },
      },
    };
    const s = sink(counted);
    for (let i = 1; i <= 2500; i++) s.write(event(handle.tenant.id, i));
    await s.flush();
    expect(transactions).toBe(3);
    expect(await count(handle)).toBe(2500);
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 2500 });
    await s.close();
    // A small maxBuffer bounds the default batch too (it is not a configuration error).
    transactions = 0;
    const small = sink(counted, { maxBuffer: 40 });
    for (let i = 1; i <= 50; i++) small.write(event(handle.tenant.id, i));
    await small.flush();
    expect(transactions).toBe(2);
    await small.close();
  });

  it('flushes on its own timer, off the request path', async () => {
    const handle = await tenant();
    const s = sink(handle, { flushIntervalMs: 20 });
    for (let i = 1; i <= 3; i++) s.write(event(handle.tenant.id, i));
    expect(await count(handle)).toBe(0);
    await vi.waitFor(async () => expect(await count(handle)).toBe(3), { timeout: 5000, interval: 20 });
    await s.close();
  });

  it('pages with afterSeq and limit', async () => {
    const handle = await seeded(12);
    const page = await readAuditEvents(handle, { afterSeq: 5, limit: 4 });
    expect(page.map((e) => e.seq)).toEqual([6, 7, 8, 9]);
    expect((await readAuditEvents(handle, { afterSeq: 12 })).length).toBe(0);
    expect((await readAuditEvents(handle, { limit: 5000 })).length).toBe(12);
    await expect(readAuditEvents(handle, { limit: 0 })).rejects.toThrow(TypeError);
    await expect(readAuditEvents(handle, { afterSeq: -1 })).rejects.toThrow(TypeError);
  });

  it('refuses UPDATE, DELETE and TRUNCATE through the append-only trigger', async () => {
    const handle = await seeded(2);
    await expect(
      handle.sql.query(`UPDATE ${handle.schema}.audit_events SET decision = 'allow'`),
    ).rejects.toThrow();
    await expect(handle.sql.query(`DELETE FROM ${handle.schema}.audit_events`)).rejects.toThrow();
    await expect(handle.sql.query(`TRUNCATE ${handle.schema}.audit_events`)).rejects.toThrow();
    expect(await count(handle)).toBe(2);
  });

  it('stores the issuer of the subject, covers it with the chain, and reads it back', async () => {
    const handle = await tenant();
    const s = sink(handle, { batchSize: 3 });
    s.write(event(handle.tenant.id, 1, { issuer: 'https://idp-a.test' }));
    s.write(event(handle.tenant.id, 2, { issuer: 'https://idp-b.test' }));
    s.write(event(handle.tenant.id, 3));
    await s.close();
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 3 });
    const read = await readAuditEvents(handle);
    expect(read.map((e) => [e.subject, e.issuer])).toEqual([
      ['user-1', 'https://idp-a.test'],
      ['user-2', 'https://idp-b.test'],
      ['user-3', undefined],
    ]);
    await tamper(
      handle,
      `UPDATE ${handle.schema}.audit_events SET issuer = 'https://idp-a.test' WHERE seq = 2`,
    );
    await tamper(
      handle,
      `UPDATE ${handle.schema}.audit_events SET issuer = 'https://idp-a.test' WHERE seq = 3`,
    );
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([
      [2, 'modified'],
      [3, 'modified'],
    ]);
  });

  it('reports a row edited in SQL as modified, at that seq only', async () => {
    const handle = await seeded(6);
    await tamper(handle, `UPDATE ${handle.schema}.audit_events SET decision = 'allow' WHERE seq = 3`);
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([{ seq: 3, kind: 'modified', detail: expect.any(String) }]);
  });

  it('detects an edit to a time, a failed list or a latency', async () => {
    const handle = await seeded(6);
    await tamper(
      handle,
      `UPDATE ${handle.schema}.audit_events SET time = time + interval '1 microsecond' WHERE seq = 2`,
    );
    await tamper(handle, `UPDATE ${handle.schema}.audit_events SET failed = ARRAY['roles'] WHERE seq = 3`);
    await tamper(handle, `UPDATE ${handle.schema}.audit_events SET latency_micros = 0 WHERE seq = 4`);
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([
      [2, 'modified'],
      [3, 'modified'],
      [4, 'modified'],
    ]);
  });

  it('reports a deleted middle row as missing', async () => {
    const handle = await seeded(6);
    await tamper(handle, `DELETE FROM ${handle.schema}.audit_events WHERE seq = 3`);
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.rows).toBe(5);
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([[3, 'missing']]);
  });

  it('reports deleted last rows as truncated, and keeps the gap as evidence when appending resumes', async () => {
    const handle = await seeded(6);
    await tamper(handle, `DELETE FROM ${handle.schema}.audit_events WHERE seq >= 5`);
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([[5, 'truncated']]);

    const logger = captureLogger();
    const s = sink(handle, { logger });
    s.write(event(handle.tenant.id, 7));
    await s.close();
    expect(logger.lines.some((l) => l.level === 'error' && /head does not match/.test(l.message))).toBe(true);
    const after = await verifyAuditChain(handle, ring('k1'));
    expect(after.ok).toBe(false);
    expect(after.problems.map((p) => [p.seq, p.kind])).toEqual([[5, 'missing']]);
    expect((await readAuditEvents(handle, { afterSeq: 4 })).map((e) => e.seq)).toEqual([7]);
  });

  it('reports an edited head', async () => {
    const handle = await seeded(4);
    await handle.sql.query(`UPDATE ${handle.schema}.audit_head SET seq = 3`);
    let result = await verifyAuditChain(handle, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([[null, 'head_mismatch']]);

    await handle.sql.query(`UPDATE ${handle.schema}.audit_head SET seq = 4, mac = $1`, ['0'.repeat(64)]);
    result = await verifyAuditChain(handle, ring('k1'));
    expect(result.problems.map((p) => [p.seq, p.kind])).toEqual([[null, 'head_mismatch']]);

    await handle.sql.query(`DELETE FROM ${handle.schema}.audit_head`);
    result = await verifyAuditChain(handle, ring('k1'));
    expect(result).toMatchObject({ ok: false, head: null });
    expect(result.problems.map((p) => p.kind)).toEqual(['head_mismatch']);

    // Appending still works (continuing after the last row) instead of jamming the log.
    const s = sink(handle);
    s.write(event(handle.tenant.id, 5));
    await s.close();
    expect((await readAuditHead(handle))?.seq).toBe(5);
  });

  it('binds rows to their tenant: a row copied into another tenant does not verify', async () => {
    const a = await seeded(3);
    const b = await seeded(3);
    await tamper(b, `DELETE FROM ${b.schema}.audit_events WHERE seq = 2`);
    await tamper(
      b,
      `INSERT INTO ${b.schema}.audit_events SELECT * FROM ${a.schema}.audit_events WHERE seq = 2`,
    );
    const result = await verifyAuditChain(b, ring('k1'));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.seq, p.kind])).toContainEqual([2, 'modified']);
  });

  it('never forks the chain when two sinks (replicas) append to one tenant at once', async () => {
    const sqlA = db.name === 'postgres' ? await db.open() : sql;
    const sqlB = db.name === 'postgres' ? await db.open() : sql;
    const handle = await tenant(sqlA);
    const replicaA = sink({ ...handle, sql: sqlA }, { batchSize: 5 });
    const replicaB = sink({ ...handle, sql: sqlB }, { batchSize: 5 });
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 20; i++) {
        replicaA.write(event(handle.tenant.id, round * 100 + i, { target: 'from-a' }));
        replicaB.write(event(handle.tenant.id, round * 100 + i, { target: 'from-b' }));
      }
      await Promise.all([replicaA.flush(), replicaB.flush()]);
    }
    await Promise.all([replicaA.close(), replicaB.close()]);
    const result = await verifyAuditChain(handle, ring('k1'));
    expect(result).toMatchObject({ ok: true, rows: 240 });
    const seqs: number[] = [];
    for (let after = 0; ; ) {
      const page = await readAuditEvents(handle, { afterSeq: after, limit: 1000 });
      if (page.length === 0) break;
      seqs.push(...page.map((e) => e.seq));
      after = page[page.length - 1]!.seq;
    }
    expect(seqs).toEqual(Array.from({ length: 240 }, (_, i) => i + 1));
  });

  it('verifies across a key rotation, and reports rows under a key no longer in the ring', async () => {
    const handle = await tenant();
    const before = sink(handle, { masterKey: ring('k1') });
    for (let i = 1; i <= 3; i++) before.write(event(handle.tenant.id, i));
    await before.close();
    const after = sink(handle, { masterKey: ring('k2', 'k1') });
    for (let i = 4; i <= 6; i++) after.write(event(handle.tenant.id, i));
    await after.close();

    const kids = await sql.query<{ key_id: string }>(
      `SELECT key_id FROM ${handle.schema}.audit_events ORDER BY seq`,
    );
    expect(kids.rows.map((r) => r.key_id)).toEqual(['k1', 'k1', 'k1', 'k2', 'k2', 'k2']);
    expect(await verifyAuditChain(handle, ring('k2', 'k1'))).toMatchObject({ ok: true, rows: 6 });

    const withoutOld = await verifyAuditChain(handle, ring('k2'));
    expect(withoutOld.ok).toBe(false);
    expect(withoutOld.problems.map((p) => [p.seq, p.kind])).toEqual([
      [1, 'unknown_key'],
      [2, 'unknown_key'],
      [3, 'unknown_key'],
    ]);
    // Same kid, different key material: every row is reported as modified.
    const forged: MasterKeyRing = {
      activeKid: 'k1',
      keys: new Map([
        ['k1', new Uint8Array(32)],
        ['k2', keyBytes('k2')],
      ]),
    };
    expect((await verifyAuditChain(handle, forged)).problems.map((p) => p.kind)).toEqual([
      'modified',
      'modified',
      'modified',
    ]);
  });

  it('keeps events buffered while the database is down, never throws on write, and resumes by itself', async () => {
    const handle = await tenant();
    let down = true;
    let unreachable: SqlClient;
    if (db.name === 'postgres') {
      // A real refused connection: nothing listens on port 1.
      unreachable = await createPgClient({
        connectionString: 'postgresql://postgres@127.0.0.1:1/none',
        max: 1,
      });
      opened.push(unreachable);
    } else {
      const fail = async (): Promise<never> => {
        throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
      };
      unreachable = { ...sql, query: fail, transaction: fail };
    }
    const logger = captureLogger();
    const s = createPostgresAuditSink({
      resolve: async () => (down ? { ...handle, sql: unreachable } : handle),
      masterKey: ring('k1'),
      flushIntervalMs: 20,
      logger,
    });
    for (let i = 1; i <= 10; i++) expect(() => s.write(event(handle.tenant.id, i))).not.toThrow();
    await expect(s.flush()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(s.buffered).toBe(10);
    expect(await count(handle)).toBe(0);
    expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(1);

    down = false;
    await vi.waitFor(async () => expect(await count(handle)).toBe(10), { timeout: 5000, interval: 20 });
    expect(s.buffered).toBe(0);
    expect(logger.lines.some((l) => l.level === 'info' && /again/.test(l.message))).toBe(true);
    expect((await readAuditEvents(handle)).map((e) => e.target)).toEqual(
      Array.from({ length: 10 }, (_, i) => `t${i + 1}`),
    );
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 10 });
    await s.close();
  });

  it('rejects flush with SERVICE_UNAVAILABLE when resolve cannot reach the master database', async () => {
    const handle = await tenant();
    let down = true;
    const s = createPostgresAuditSink({
      resolve: async () => {
        if (down) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
        return handle;
      },
      masterKey: ring('k1'),
      flushIntervalMs: 60_000,
      logger: captureLogger(),
    });
    s.write(event(handle.tenant.id, 1));
    await expect(s.flush()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    await expect(s.close()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    down = false;
    await s.close();
    expect(await count(handle)).toBe(1);
  });

  it('never evicts buffered events: stops accepting at maxBuffer, keeps up to twice that, counts what is past it', async () => {
    const handle = await tenant();
    let down = true;
    const logger = captureLogger();
    const s = createPostgresAuditSink({
      resolve: async () => {
        if (down) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
        return handle;
      },
      masterKey: ring('k1'),
      batchSize: 5,
      maxBuffer: 10,
      flushIntervalMs: 60_000,
      logger,
    });
    for (let i = 0; i < 9; i++) s.write(event(handle.tenant.id, i));
    expect(s.accepting).toBe(true);
    s.write(event(handle.tenant.id, 9));
    // Full: new decisions are refused (long before refuseAfterMs), nothing buffered is given up.
    expect(s.accepting).toBe(false);
    for (let i = 10; i < 25; i++) s.write(event(handle.tenant.id, i));
    await expect(s.flush()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(s.buffered).toBe(20);
    expect(s.dropped).toBe(5);
    const dropLog = logger.lines.find((l) => l.level === 'error' && /dropped/.test(l.message));
    expect(dropLog?.fields).toMatchObject({ totalDropped: 5 });

    down = false;
    await s.flush();
    expect(s.accepting).toBe(true);
    expect(s.state()).toMatchObject({ accepting: true, buffered: 0, written: 20, dropped: 5 });
    await s.close();
    // The oldest events are kept: only the newest, written past twice maxBuffer, are missing.
    expect((await readAuditEvents(handle)).map((e) => e.target)).toEqual(
      Array.from({ length: 20 }, (_, i) => `t${i}`),
    );
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 20 });
  });

  it('skips events without a valid tenant, or of an unknown tenant, and keeps tenants apart', async () => {
    const a = await tenant();
    const b = await tenant();
    const logger = captureLogger();
    const s = sink([a, b], { logger });
    s.write(event(undefined, 1));
    s.write(event('Not A Tenant"; DROP TABLE x; --', 2));
    s.write(event('no-such-tenant', 3));
    s.write(event(a.tenant.id, 4, { target: 'a-only' }));
    s.write(event(b.tenant.id, 5, { target: 'b-only' }));
    await s.close();
    expect(s.skipped).toBe(3);
    expect(s.dropped).toBe(0);
    expect(logger.lines.some((l) => l.level === 'warn' && l.fields?.tenantId === 'no-such-tenant')).toBe(
      true,
    );
    expect(await readAuditEvents(a)).toMatchObject([{ seq: 1, target: 'a-only', tenantId: a.tenant.id }]);
    expect(await readAuditEvents(b)).toMatchObject([{ seq: 1, target: 'b-only', tenantId: b.tenant.id }]);
  });

  it('stores hostile values so that they verify exactly, without throwing on write', async () => {
    const handle = await tenant();
    const s = sink(handle, { clock: () => Date.UTC(2030, 0, 1) });
    const hostile = event(handle.tenant.id, 1, {
      time: 'not a time',
      subject: 'nul\u0000inside',
      target: 'lone \ud800 surrogate',
      failed: ['x\u0000', ''],
      latencyMicros: 1e12,
      clientId: 'c'.repeat(10_000),
    });
    expect(() => s.write(hostile)).not.toThrow();
    expect(() => s.write(null as unknown as AuditEvent)).not.toThrow();
    s.write(event(handle.tenant.id, 2, { latencyMicros: Number.NaN, failed: [] }));
    await s.close();
    expect(s.dropped).toBe(1);
    const [first, second] = await readAuditEvents(handle);
    expect(first).toMatchObject({
      time: '2030-01-01T00:00:00.000Z',
      subject: 'nul\uFFFDinside',
      target: 'lone \uFFFD surrogate',
      failed: ['x\uFFFD', ''],
      latencyMicros: 2_147_483_647,
    });
    expect(first!.clientId!.length).toBeLessThan(5000);
    expect(second).toMatchObject({ latencyMicros: undefined, failed: [] });
    expect(await verifyAuditChain(handle, ring('k1'))).toMatchObject({ ok: true, rows: 2 });
  });

  it('stores only the AuditEvent fields: nothing smuggled on the event object reaches the table', async () => {
    const handle = await tenant();
    const s = sink(handle);
    const canary = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJl';
    const smuggled = {
      ...event(handle.tenant.id, 1, { target: 'hello', subject: 'alice' }),
      token: canary,
      claims: { secret: canary },
    } as AuditEvent;
    s.write(smuggled);
    await s.close();
    const dump = await sql.query<{ row: string }>(
      `SELECT t::text AS row FROM ${handle.schema}.audit_events t`,
    );
    expect(dump.rows).toHaveLength(1);
    expect(dump.rows[0]!.row).toContain('hello');
    expect(dump.rows[0]!.row).toContain('alice');
    expect(dump.rows[0]!.row).not.toContain(canary);
    expect(dump.rows[0]!.row).not.toContain('eyJ');
    const [stored] = await readAuditEvents(handle);
    expect(Object.keys(stored!).sort()).toEqual(
      [
        'seq',
        'time',
        'action',
        'decision',
        'subject',
        'tenantId',
        'clientId',
        'target',
        'reason',
        'failed',
        'argumentsDigest',
        'latencyMicros',
      ].sort(),
    );
  });

  it('close() flushes, stops the timer, and drops later writes', async () => {
    const handle = await tenant();
    const s = sink(handle, { flushIntervalMs: 10 });
    s.write(event(handle.tenant.id, 1));
    await s.close();
    expect(await count(handle)).toBe(1);
    s.write(event(handle.tenant.id, 2));
    expect(s.dropped).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(await count(handle)).toBe(1);
  });

  it('refuses bad options at creation', () => {
    const base = { resolve: async () => ({}) as TenantHandle, masterKey: ring('k1') };
    expect(() => createPostgresAuditSink({ ...base, batchSize: 0 })).toThrow(TypeError);
    expect(() => createPostgresAuditSink({ ...base, batchSize: 1001 })).toThrow(TypeError);
    expect(() => createPostgresAuditSink({ ...base, flushIntervalMs: 1.5 })).toThrow(TypeError);
    expect(() => createPostgresAuditSink({ ...base, batchSize: 50, maxBuffer: 10 })).toThrow(TypeError);
    expect(() =>
      createPostgresAuditSink({ ...base, masterKey: { activeKid: 'x', keys: new Map() } }),
    ).toThrow(TypeError);
  });
});
