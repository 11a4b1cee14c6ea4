import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/audit.js';
import type { MasterKeyRing } from '../../src/env.js';
import { AuthSecError } from '../../src/errors.js';
import {
  AUDIT_CHECKPOINT_TYPE,
  createFileCheckpointSink,
  createStreamCheckpointSink,
  parseAuditCheckpoints,
  readAuditCheckpoints,
  signAuditCheckpoint,
  verifyAuditCheckpoints,
} from '../../src/postgres/audit-checkpoints.js';
import {
  createPostgresAuditSink,
  ensureAuditSchema,
  readAuditHead,
  verifyAuditChain,
} from '../../src/postgres/audit-store.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import type { TenantHandle } from '../../src/postgres/tenancy-types.js';
import type { Logger } from '../../src/types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

const RING: MasterKeyRing = { activeKid: 'k1', keys: new Map([['k1', new Uint8Array(randomBytes(32))]]) };

function quietLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function event(tenantId: string, i: number): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(),
    action: 'tool.call',
    decision: 'allow',
    subject: `user-${i}`,
    tenantId,
    clientId: 'client-1',
    target: `t${i}`,
    reason: undefined,
    failed: undefined,
    argumentsDigest: undefined,
    latencyMicros: i,
  };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'authsec-checkpoints-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
let fileCounter = 0;
const freshFile = () => join(dir, `checkpoints-${++fileCounter}.jsonl`);

describe('checkpoint signing and files', () => {
  it('signs, appends JSON lines to a 0600 file, and reads them back', async () => {
    const path = freshFile();
    const sink = createFileCheckpointSink({ path });
    const a = signAuditCheckpoint(RING, { tenant: 'acme', seq: 3, mac: 'a'.repeat(64), timeMs: 0 });
    const b = signAuditCheckpoint(RING, { tenant: 'acme', seq: 5, mac: 'b'.repeat(64), timeMs: 1000 });
    await sink.write([a]);
    await sink.write([b]);
    expect(a).toMatchObject({ type: AUDIT_CHECKPOINT_TYPE, v: 1, tenant: 'acme', seq: 3, kid: 'k1' });
    expect(a.time).toBe('1970-01-01T00:00:00.000Z');
    expect(a.sig).toMatch(/^[0-9a-f]{64}$/);
    if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);
    const parsed = await readAuditCheckpoints(path);
    expect(parsed.malformed).toEqual([]);
    expect(parsed.checkpoints).toEqual([
      { line: 1, checkpoint: a },
      { line: 2, checkpoint: b },
    ]);
  });

  it('narrows an existing file to 0600 and only appends to it', async () => {
    if (process.platform === 'win32') return;
    const path = freshFile();
    writeFileSync(path, '{"level":"info","message":"a log line"}\n', { mode: 0o644 });
    await createFileCheckpointSink({ path }).write([
      signAuditCheckpoint(RING, { tenant: 'acme', seq: 1, mac: 'c'.repeat(64), timeMs: 0 }),
    ]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith('{"level":"info","message":"a log line"}\n')).toBe(true);
    expect(parseAuditCheckpoints(text).checkpoints).toHaveLength(1);
  });

  it('writes to stderr-like streams; reading skips other lines and lists malformed checkpoints', async () => {
    let text = '';
    await createStreamCheckpointSink({
      stream: {
        write: (chunk: string) => {
          text += chunk;
        },
      },
    }).write([signAuditCheckpoint(RING, { tenant: 'acme', seq: 2, mac: 'd'.repeat(64), timeMs: 0 })]);
    text +=
      'not json\n{"type":"authsec.audit.checkpoint","v":1,"tenant":"acme","seq":-1}\n{"torn":"authsec.audit.checkp';
    const parsed = parseAuditCheckpoints(`{"level":"warn"}\n${text}`);
    expect(parsed.checkpoints.map((c) => c.line)).toEqual([2]);
    expect(parsed.malformed).toEqual([{ line: 4, tenant: 'acme', reason: 'invalid seq' }]);
  });

  it('refuses misuse with a TypeError', () => {
    expect(() =>
      signAuditCheckpoint(RING, { tenant: 'Bad Id', seq: 1, mac: 'a'.repeat(64), timeMs: 0 }),
    ).toThrow(TypeError);
    expect(() =>
      signAuditCheckpoint(RING, { tenant: 'acme', seq: 0, mac: 'a'.repeat(64), timeMs: 0 }),
    ).toThrow(TypeError);
    expect(() => signAuditCheckpoint(RING, { tenant: 'acme', seq: 1, mac: 'xyz', timeMs: 0 })).toThrow(
      TypeError,
    );
    expect(() => createFileCheckpointSink({ path: '' })).toThrow(TypeError);
    const base = { resolve: async () => ({}) as TenantHandle, masterKey: RING };
    expect(() => createPostgresAuditSink({ ...base, refuseAfterMs: 0 })).toThrow(TypeError);
    expect(() => createPostgresAuditSink({ ...base, checkpointIntervalMs: 1.5 })).toThrow(TypeError);
    expect(() =>
      createPostgresAuditSink({ ...base, checkpointSinks: [{} as never] as unknown as never[] }),
    ).toThrow(TypeError);
  });
});

/**
 * A sink (one event per batch, refuseAfterMs 1000, no timer flushes) over a tenant whose every batch
 * transaction is `transaction` (standing in for the whole append: it returns the new head), to time write
 * passes without a database.
 */
function sinkOver(transaction: () => Promise<{ seq: number; mac: string }>, clock: () => number) {
  const handle = {
    tenant: { id: 'acme', status: 'active', placement: 'schema', createdAt: new Date() },
    schema: '"tenant_acme"',
    sql: { transaction },
  } as unknown as TenantHandle;
  return createPostgresAuditSink({
    resolve: async () => handle,
    masterKey: RING,
    batchSize: 1,
    flushIntervalMs: 60_000,
    refuseAfterMs: 1000,
    clock,
    logger: quietLogger(),
  });
}

describe('a write that hangs', () => {
  it('stops accepting once one write pass has run for refuseAfterMs', async () => {
    let now = 1_000_000;
    const sink = createPostgresAuditSink({
      resolve: () => new Promise<TenantHandle>(() => {}),
      masterKey: RING,
      flushIntervalMs: 10,
      refuseAfterMs: 1000,
      clock: () => now,
      logger: quietLogger(),
    });
    sink.write(event('acme', 1));
    await vi.waitFor(() => expect(sink.buffered).toBe(1));
    await new Promise((r) => setTimeout(r, 30));
    expect(sink.accepting).toBe(true);
    now += 999;
    expect(sink.accepting).toBe(true);
    now += 1;
    expect(sink.accepting).toBe(false);
    expect(sink.state()).toMatchObject({ accepting: false, buffered: 1, dropped: 0 });
  });

  it('keeps accepting through a long write pass whose batches each complete in time', async () => {
    // A backlog written one batch at a time, each batch taking 600 ms of a 1000 ms refuseAfterMs: the pass
    // takes 3 s, yet no write ever waited for refuseAfterMs, so no decision may be refused for it.
    let now = 1_000_000;
    let seq = 0;
    const seen: boolean[] = [];
    const sink = sinkOver(
      async () => {
        seen.push(sink.accepting);
        now += 600;
        seen.push(sink.accepting);
        return { seq: ++seq, mac: 'm' };
      },
      () => now,
    );
    for (let i = 1; i <= 5; i++) sink.write(event('acme', i));
    await sink.flush();
    expect(seen).toHaveLength(10);
    expect(seen.every(Boolean)).toBe(true);
    expect(sink.state()).toMatchObject({ accepting: true, written: 5, buffered: 0, dropped: 0 });
  });

  it('stops accepting when one batch of a pass hangs for refuseAfterMs, after others completed', async () => {
    let now = 1_000_000;
    let calls = 0;
    const sink = sinkOver(
      () => {
        calls++;
        if (calls === 1) {
          now += 600;
          return Promise.resolve({ seq: 1, mac: 'm' });
        }
        return new Promise(() => {});
      },
      () => now,
    );
    for (let i = 1; i <= 3; i++) sink.write(event('acme', i));
    void sink.flush();
    await vi.waitFor(() => expect(calls).toBe(2));
    now += 999;
    expect(sink.accepting).toBe(true);
    now += 1;
    expect(sink.accepting).toBe(false);
    expect(sink.state()).toMatchObject({ accepting: false, written: 1, buffered: 2, dropped: 0 });
  });
});

describe.each(TEST_DATABASES)('audit checkpoints against the chain ($name)', ({ create }) => {
  let db: TestDatabase;
  let sql: SqlClient;

  beforeAll(async () => {
    db = await create();
    sql = await db.open();
  }, 60_000);
  afterAll(async () => {
    await db?.dispose();
  }, 60_000);

  async function tenant(): Promise<TenantHandle> {
    const id = `c-${randomBytes(4).toString('hex')}`;
    await ensureAuditSchema(sql, `tenant_${id}`);
    return {
      tenant: { id, status: 'active', placement: 'schema', createdAt: new Date() },
      sql,
      schema: `"tenant_${id}"`,
    };
  }

  /** A tenant with `n` events written by a sink that checkpoints into a fresh file on close. */
  async function anchored(n: number) {
    const handle = await tenant();
    const path = freshFile();
    const s = createPostgresAuditSink({
      resolve: async (id) => {
        if (id !== handle.tenant.id) throw new AuthSecError('TENANT_UNKNOWN', 'Unknown tenant');
        return handle;
      },
      masterKey: RING,
      batchSize: 3,
      flushIntervalMs: 60_000,
      checkpointSinks: [createFileCheckpointSink({ path })],
      logger: quietLogger(),
    });
    for (let i = 1; i <= n; i++) s.write(event(handle.tenant.id, i));
    await s.close();
    expect(s.state().checkpoints).toBe(1);
    return { handle, path };
  }

  async function tamper(handle: TenantHandle, ...statements: string[]) {
    await handle.sql.query(`ALTER TABLE ${handle.schema}.audit_events DISABLE TRIGGER USER`);
    for (const statement of statements) await handle.sql.query(statement);
    await handle.sql.query(`ALTER TABLE ${handle.schema}.audit_events ENABLE TRIGGER USER`);
  }

  it('an untouched log holds its newest checkpoint', async () => {
    const { handle, path } = await anchored(7);
    const parsed = await readAuditCheckpoints(path);
    expect(parsed.checkpoints).toHaveLength(1);
    expect(parsed.checkpoints[0]!.checkpoint).toMatchObject({ tenant: handle.tenant.id, seq: 7 });
    expect(parsed.checkpoints[0]!.checkpoint.mac).toBe((await readAuditHead(handle))!.mac);
    const result = await verifyAuditCheckpoints(handle, RING, parsed);
    expect(result).toMatchObject({ ok: true, checked: 1, problems: [] });
    expect(result.newest?.checkpoint.seq).toBe(7);
  });

  it('detects the newest rows deleted and the head rewound, which the chain alone does not', async () => {
    const { handle, path } = await anchored(6);
    const s = handle.schema;
    await tamper(
      handle,
      `DELETE FROM ${s}.audit_events WHERE seq > 4`,
      `UPDATE ${s}.audit_head SET seq = 4, mac = (SELECT mac FROM ${s}.audit_events WHERE seq = 4)`,
    );
    expect(await verifyAuditChain(handle, RING)).toMatchObject({ ok: true, rows: 4 });
    const result = await verifyAuditCheckpoints(handle, RING, await readAuditCheckpoints(path));
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([
      { line: 1, seq: 6, kind: 'shortened', detail: expect.stringContaining('row 6 is gone') },
    ]);
  });

  it('detects an emptied table with a reset head', async () => {
    const { handle, path } = await anchored(3);
    await tamper(
      handle,
      `DELETE FROM ${handle.schema}.audit_events`,
      `UPDATE ${handle.schema}.audit_head SET seq = 0, mac = ''`,
    );
    expect(await verifyAuditChain(handle, RING)).toMatchObject({ ok: true, rows: 0 });
    const result = await verifyAuditCheckpoints(handle, RING, await readAuditCheckpoints(path));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['shortened', 3]]);
    expect(result.problems[0]!.detail).toContain('emptied');
  });

  it('detects a log cut and refilled to the same length (row seq has another MAC)', async () => {
    const { handle, path } = await anchored(4);
    await tamper(
      handle,
      `DELETE FROM ${handle.schema}.audit_events WHERE seq > 2`,
      `UPDATE ${handle.schema}.audit_head SET seq = 2, mac = (SELECT mac FROM ${handle.schema}.audit_events WHERE seq = 2)`,
    );
    const refill = createPostgresAuditSink({
      resolve: async () => handle,
      masterKey: RING,
      flushIntervalMs: 60_000,
      logger: quietLogger(),
    });
    refill.write(event(handle.tenant.id, 30));
    refill.write(event(handle.tenant.id, 40));
    await refill.close();
    expect(await verifyAuditChain(handle, RING)).toMatchObject({ ok: true, rows: 4 });
    const result = await verifyAuditCheckpoints(handle, RING, await readAuditCheckpoints(path));
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['shortened', 4]]);
    expect(result.problems[0]!.detail).toContain('another MAC');
  });

  it('refuses forged, foreign-key and missing checkpoints', async () => {
    const { handle, path } = await anchored(2);
    const text = readFileSync(path, 'utf8');
    const forged = text.replace('"seq":2', '"seq":1');
    const other: MasterKeyRing = { activeKid: 'k9', keys: new Map([['k9', new Uint8Array(32)]]) };
    const foreign = JSON.stringify(
      signAuditCheckpoint(other, { tenant: handle.tenant.id, seq: 1, mac: 'e'.repeat(64), timeMs: 0 }),
    );
    const result = await verifyAuditCheckpoints(handle, RING, parseAuditCheckpoints(`${forged}${foreign}\n`));
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.kind, p.line])).toEqual([
      ['checkpoint_invalid', 1],
      ['checkpoint_invalid', 2],
      ['checkpoint_missing', null],
    ]);
    // Another tenant's checkpoints anchor nothing here.
    const fresh = await tenant();
    const none = await verifyAuditCheckpoints(fresh, RING, parseAuditCheckpoints(text));
    expect(none).toMatchObject({ ok: false, checked: 0, newest: null });
    expect(none.problems.map((p) => p.kind)).toEqual(['checkpoint_missing']);
  });

  it('writes checkpoints periodically, only for heads that moved, and retries a failed checkpoint sink', async () => {
    const handle = await tenant();
    const written: number[] = [];
    let failNext = true;
    const logger = quietLogger();
    const s = createPostgresAuditSink({
      resolve: async () => handle,
      masterKey: RING,
      flushIntervalMs: 10,
      checkpointIntervalMs: 20,
      checkpointSinks: [
        {
          write: async (list) => {
            if (failNext) {
              failNext = false;
              throw new Error('disk full');
            }
            written.push(...list.map((c) => c.seq));
          },
        },
      ],
      logger,
    });
    s.write(event(handle.tenant.id, 1));
    s.write(event(handle.tenant.id, 2));
    await vi.waitFor(() => expect(written).toEqual([2]), { timeout: 5000, interval: 10 });
    expect(
      logger.lines.some((l) => l.level === 'error' && /checkpoints could not be written/.test(l.message)),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(written).toEqual([2]);
    s.write(event(handle.tenant.id, 3));
    await s.close();
    expect(written).toEqual([2, 3]);
    expect(s.state().checkpoints).toBe(2);
  });
});
