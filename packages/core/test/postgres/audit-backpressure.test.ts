/**
 * The audit sink under an outage, through the engine: a database that goes away mid-test (a PGlite instance
 * closed and reopened on its data folder; for real PostgreSQL a TCP proxy on 127.0.0.1 that is cut and
 * restored, never the shared server) makes the engine refuse decisions with SERVICE_UNAVAILABLE once writes
 * have failed for `refuseAfterMs`, readiness reports the audit sink, and every buffered event is written after
 * recovery: none is dropped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MasterKeyRing } from '../../src/env.js';
import { type AuthSecError, createAuthSec, type Logger } from '../../src/index.js';
import { type AuditCheckpoint, verifyAuditCheckpoints } from '../../src/postgres/audit-checkpoints.js';
import {
  createPostgresAuditSink,
  ensureAuditSchema,
  readAuditEvents,
  verifyAuditChain,
} from '../../src/postgres/audit-store.js';
import { createPGliteClient, createPgClient, type SqlClient } from '../../src/postgres/sql.js';
import type { TenantHandle } from '../../src/postgres/tenancy-types.js';
import { PG_URL, postgresDatabase, type TestDatabase } from '../helpers/databases.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'https://mcp.test/mcp';
const REFUSE_AFTER_MS = 300;

interface Captured {
  level: string;
  message: string;
}
function captureLogger(): Logger & { lines: Captured[] } {
  const lines: Captured[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A database the test can take away and give back, without touching the shared server. */
interface Cuttable {
  /** The client to use now (PGlite: a new instance after each restore). */
  client(): SqlClient;
  cut(): Promise<void>;
  restore(): Promise<void>;
  dispose(): Promise<void>;
}

async function cuttablePGlite(): Promise<Cuttable> {
  const dir = mkdtempSync(join(tmpdir(), 'authsec-audit-outage-'));
  let current = await createPGliteClient({ dataDir: dir });
  return {
    client: () => current,
    cut: () => current.close(),
    async restore() {
      current = await createPGliteClient({ dataDir: dir });
    },
    async dispose() {
      await current.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP proxy on 127.0.0.1 in front of the PostgreSQL server: cut() severs every connection and stops listening. */
async function cuttablePostgres(): Promise<Cuttable> {
  const db: TestDatabase = await postgresDatabase('outage');
  const target = new URL(db.url!);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((inbound) => {
        const outbound = new Socket();
        sockets.add(inbound);
        sockets.add(outbound);
        const drop = () => {
          inbound.destroy();
          outbound.destroy();
          sockets.delete(inbound);
          sockets.delete(outbound);
        };
        inbound.on('error', drop).on('close', drop);
        outbound.on('error', drop).on('close', drop);
        outbound.connect(Number(target.port || 5432), target.hostname, () => {
          inbound.pipe(outbound);
          outbound.pipe(inbound);
        });
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  await listen();
  const proxied = new URL(db.url!);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);
  const client = await createPgClient({
    connectionString: proxied.toString(),
    max: 2,
    connectTimeoutMs: 1000,
  });
  return {
    client: () => client,
    async cut() {
      const s = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    },
    restore: listen,
    async dispose() {
      await client.close().catch(() => {});
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await db.dispose();
    },
  };
}

const DATABASES: readonly { name: string; create(): Promise<Cuttable> }[] = [
  { name: 'pglite', create: cuttablePGlite },
  ...(PG_URL ? [{ name: 'postgres', create: cuttablePostgres }] : []),
];

let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;
beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
});

function token(tenantId: string): Promise<string> {
  return new SignJWT({ tenant_id: tenantId, scope: 'read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject('alice')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
    .sign(privateKey);
}

function caught(fn: () => unknown): AuthSecError | undefined {
  try {
    fn();
  } catch (error) {
    return error as AuthSecError;
  }
  return undefined;
}

async function rejection(promise: Promise<unknown>): Promise<AuthSecError> {
  try {
    await promise;
  } catch (error) {
    return error as AuthSecError;
  }
  throw new Error('expected a rejection');
}

describe.each(DATABASES)('audit backpressure through the engine ($name)', ({ create }) => {
  let db: Cuttable;
  const ring: MasterKeyRing = { activeKid: 'k1', keys: new Map([['k1', new Uint8Array(randomBytes(32))]]) };

  beforeAll(async () => {
    db = await create();
  }, 60_000);
  afterAll(async () => {
    await db?.dispose();
  }, 60_000);

  it('refuses decisions with SERVICE_UNAVAILABLE once writes have failed for refuseAfterMs, and writes every buffered event after recovery', async () => {
    const tenantId = `t-${randomBytes(4).toString('hex')}`;
    await ensureAuditSchema(db.client(), `tenant_${tenantId}`);
    const handle = (): TenantHandle => ({
      tenant: { id: tenantId, status: 'active', placement: 'schema', createdAt: new Date() },
      sql: db.client(),
      schema: `"tenant_${tenantId}"`,
    });
    const checkpoints: AuditCheckpoint[] = [];
    const sinkLogger = captureLogger();
    const sink = createPostgresAuditSink({
      resolve: async () => handle(),
      masterKey: ring,
      flushIntervalMs: 20,
      refuseAfterMs: REFUSE_AFTER_MS,
      checkpointSinks: [{ write: async (list) => void checkpoints.push(...list) }],
      logger: sinkLogger,
    });
    const engine = createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
      audience: AUDIENCE,
      audit: { sinks: [sink] },
      logger: captureLogger(),
    });
    engine.tools.register('read_docs', { scopes: ['read'] }, {});
    const raw = await token(tenantId);
    const principal = await engine.authenticate(raw);
    const call = () => engine.authorizeTool(principal, { tool: 'read_docs', arguments: { n: 1 } });

    for (let i = 0; i < 5; i++) call();
    await sink.flush();
    expect(sink.state()).toMatchObject({ accepting: true, written: 5, buffered: 0, dropped: 0 });
    expect(await engine.readiness()).toEqual({ ready: true, checks: { audit: 'ok' } });

    await db.cut();
    const cutAt = Date.now();
    // Writes have not failed for long yet: decisions go on, their events wait in the buffer.
    for (let i = 0; i < 5; i++) call();
    await vi.waitFor(() => expect(sink.accepting).toBe(false), { timeout: 10_000, interval: 10 });
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(REFUSE_AFTER_MS - 50);

    expect(caught(call)?.code).toBe('SERVICE_UNAVAILABLE');
    expect((await rejection(engine.authenticate(raw))).code).toBe('SERVICE_UNAVAILABLE');
    expect(caught(() => engine.authorize(principal, { scopes: ['read'] }))?.code).toBe('SERVICE_UNAVAILABLE');
    expect(await engine.readiness()).toEqual({ ready: false, checks: { audit: 'unavailable' } });
    expect(sink.state()).toMatchObject({ accepting: false, buffered: 5, written: 5, refused: 3, dropped: 0 });
    expect(sink.state().failingSince).toEqual(expect.any(String));
    // Logged by the sink's next tick.
    await vi.waitFor(
      () =>
        expect(sinkLogger.lines.some((l) => l.level === 'error' && /stopped accepting/.test(l.message))).toBe(
          true,
        ),
      { timeout: 5000, interval: 10 },
    );

    await db.restore();
    await vi.waitFor(() => expect(sink.accepting).toBe(true), { timeout: 15_000, interval: 20 });
    expect(sink.state()).toMatchObject({
      buffered: 0,
      written: 10,
      refused: 3,
      dropped: 0,
      failingSince: null,
    });
    expect(await engine.readiness()).toEqual({ ready: true, checks: { audit: 'ok' } });
    expect(sinkLogger.lines.some((l) => l.level === 'info' && /accepts events again/.test(l.message))).toBe(
      true,
    );
    call();
    await engine.close();

    // Every decision that was made is in the chain, in order; the refused ones were never made.
    const stored = await readAuditEvents(handle(), { limit: 1000 });
    expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(stored.every((e) => e.action === 'tool.call' && e.decision === 'allow')).toBe(true);
    expect(sink.state()).toMatchObject({ written: 11, dropped: 0 });
    expect(await verifyAuditChain(handle(), ring)).toMatchObject({ ok: true, rows: 11 });
    // close() anchored the head it reached.
    expect(checkpoints.at(-1)).toMatchObject({ tenant: tenantId, seq: 11 });
    const anchored = await verifyAuditCheckpoints(handle(), ring, {
      checkpoints: checkpoints.map((checkpoint, i) => ({ line: i + 1, checkpoint })),
      malformed: [],
    });
    expect(anchored).toMatchObject({ ok: true, problems: [] });
  }, 60_000);
});
