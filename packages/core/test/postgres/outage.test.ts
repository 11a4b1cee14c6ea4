import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthSec } from '../../src/engine.js';
import { AuthSecError, isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { createPostgresDirectory, type PostgresDirectory } from '../../src/postgres/directory.js';
import { createPgClient, type SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import type { Principal } from '../../src/types.js';
import { PG_URL, TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

/**
 * Fail closed: with the database away, requests that need it are refused with SERVICE_UNAVAILABLE (never a
 * grant, never a stale grant once the outage is noticed), nothing crashes, and service resumes by itself.
 * Real PostgreSQL is taken away with a TCP proxy of this test's own on 127.0.0.1 (never the shared server).
 */

function principal(tenantId: string, subject: string): Principal {
  return Object.freeze({
    subject,
    email: undefined,
    tenantId,
    clientId: undefined,
    issuer: 'https://idp.test',
    roles: Object.freeze([]),
    groups: Object.freeze([]),
    scopes: Object.freeze([]),
    resources: Object.freeze([]),
    permissions: Object.freeze([]),
    expiresAt: 4_102_444_800,
    claims: Object.freeze({ sub: subject }),
  });
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

async function within(deadlineMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > deadlineMs) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits until every notification published so far has been delivered to `tenancy`'s listener: changes made
 * just before would otherwise still invalidate entries a test warms afterwards.
 */
async function settle(tenancy: Tenancy, tenantId: string): Promise<void> {
  const marker = `settle-${Math.random()}`;
  let heard = false;
  const stop = tenancy.subscribe((change) => {
    if (change.subject === marker) heard = true;
  });
  await tenancy.publish({ tenantId, subject: marker, kind: 'binding' });
  await within(2000, async () => heard);
  stop();
}

/** Counts errors that escape to the process (an unhandled 'error' event would crash a server). */
function escapedErrors(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    errors,
    stop() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/** A client whose database can be switched off: every statement then fails as an unreachable one would. */
function switchable(inner: SqlClient): { client: SqlClient; down: boolean } {
  const state = { down: false } as { client: SqlClient; down: boolean };
  const refuse = () => Promise.reject(new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable'));
  state.client = {
    ...inner,
    query: (text, params) => (state.down ? refuse() : inner.query(text, params)),
    transaction: (fn) => (state.down ? refuse() : inner.transaction(fn)),
    exec: (sql) => (state.down ? refuse() : inner.exec(sql)),
    notify: (channel, payload) => (state.down ? refuse() : inner.notify(channel, payload)),
  };
  return state;
}

/** A TCP proxy on 127.0.0.1 in front of the test server, that the test can cut and restore. */
class TcpProxy {
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = netConnect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Refuses new connections and kills every open one, as a database crash or a network cut would. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  /** Listens again on the same port. */
  restore(): Promise<void> {
    return this.start();
  }
}

describe.each(TEST_DATABASES)('simulated outage on $name', ({ create }) => {
  let db: TestDatabase;
  let now = 1_000_000;
  const clock = () => now;
  let switched: { client: SqlClient; down: boolean };
  let tenancy: Tenancy;
  let directory: PostgresDirectory;

  beforeAll(async () => {
    db = await create();
    switched = switchable(await db.open());
    tenancy = await createTenancy({ master: switched.client, clock, cacheTtlMs: 1000, logger: silentLogger });
    directory = createPostgresDirectory({ tenancy, clock, logger: silentLogger });
    await tenancy.migrate();
    await tenancy.create('sim');
    await directory.admin.addCatalog('sim', 'role', 'ops');
    await directory.admin.grant('sim', 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' });
    await settle(tenancy, 'sim');
  }, 60_000);

  afterAll(async () => {
    await directory?.close();
    await tenancy?.close();
    await db?.dispose();
  }, 60_000);

  it('serves a warm entry only until the next database contact, then refuses everything', async () => {
    expect((await directory.resolve(principal('sim', 'u1'))).roles).toEqual(['ops']);
    switched.down = true;
    // Within the tenant-record TTL a warm principal is still answered from memory (the documented window).
    expect((await directory.resolve(principal('sim', 'u1'))).roles).toEqual(['ops']);
    // A cold one needs the database: refused.
    expect(await outcome(directory.resolve(principal('sim', 'cold')))).toBe('SERVICE_UNAVAILABLE');
    // The outage is now known: every cache is dropped, the warm principal is refused too.
    expect(await outcome(directory.resolve(principal('sim', 'u1')))).toBe('SERVICE_UNAVAILABLE');
    now += 1001;
    expect(await outcome(directory.resolve(principal('sim', 'u1')))).toBe('SERVICE_UNAVAILABLE');
    // Unknown is not claimed when it cannot be known.
    expect(await outcome(tenancy.handle('never-seen'))).toBe('SERVICE_UNAVAILABLE');
    expect(
      await outcome(directory.admin.grant('sim', 'u2', { roles: ['ops'] }, { issuer: 'https://idp.test' })),
    ).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(tenancy.list())).toBe('SERVICE_UNAVAILABLE');
    // A tenant's tool conditions cannot be known either: the call they cover is refused, never run unchecked.
    expect(await outcome(directory.toolConditions(principal('sim', 'u1')))).toBe('SERVICE_UNAVAILABLE');
    switched.down = false;
    expect((await directory.resolve(principal('sim', 'u1'))).roles).toEqual(['ops']);
    expect((await directory.toolConditions(principal('sim', 'u1'))).size).toBe(0);
    expect(await outcome(tenancy.handle('never-seen'))).toBe('TENANT_UNKNOWN');
  });

  it('reports an outage through check(), and so through the engine readiness', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
    // Not closed at the end: closing the engine would close the directory this describe shares.
    const engine = createAuthSec({
      issuers: [{ issuer: 'https://idp.test', keys: [jwk] }],
      audience: 'https://mcp.test/mcp',
      directory,
      logger: silentLogger,
    });
    expect(await outcome(directory.check())).toBe('OK');
    expect(await engine.readiness()).toEqual({ ready: true, checks: { directory: 'ok' } });
    switched.down = true;
    expect(await outcome(directory.check())).toBe('SERVICE_UNAVAILABLE');
    expect(await engine.readiness()).toEqual({ ready: false, checks: { directory: 'unavailable' } });
    switched.down = false;
    expect(await engine.readiness()).toEqual({ ready: true, checks: { directory: 'ok' } });
  });

  it('notices an outage through the tenant-record check within its TTL', async () => {
    expect((await directory.resolve(principal('sim', 'u1'))).roles).toEqual(['ops']);
    switched.down = true;
    now += 1001;
    expect(await outcome(directory.resolve(principal('sim', 'u1')))).toBe('SERVICE_UNAVAILABLE');
    switched.down = false;
    expect(await outcome(directory.resolve(principal('sim', 'u1')))).toBe('OK');
  });
});

describe.runIf(PG_URL)('real outage (TCP proxy in front of PostgreSQL)', () => {
  const PREFIX = `o${randomBytes(3).toString('hex')}_`;
  let db: TestDatabase;
  let direct: SqlClient;
  let admin: Tenancy;
  let adminDirectory: PostgresDirectory;
  let proxy: TcpProxy;
  let proxied: SqlClient;
  let tenancy: Tenancy;
  let directory: PostgresDirectory;
  const warnings: string[] = [];

  beforeAll(async () => {
    db = await (
      TEST_DATABASES.find((d) => d.name === 'postgres') as (typeof TEST_DATABASES)[number]
    ).create();
    const url = new URL(db.url as string);
    direct = await db.open();
    admin = await createTenancy({
      master: direct,
      connectionString: url.toString(),
      databasePrefix: PREFIX,
      logger: silentLogger,
    });
    adminDirectory = createPostgresDirectory({ tenancy: admin, logger: silentLogger });
    await admin.migrate();
    for (const [id, placement] of [
      ['out-s', 'schema'],
      ['out-d', 'database'],
    ] as const) {
      await admin.create(id, { placement });
      await adminDirectory.admin.addCatalog(id, 'role', 'ops');
      await adminDirectory.admin.grant(id, 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' });
    }

    proxy = new TcpProxy(url.hostname, Number(url.port || 5432));
    await proxy.start();
    const proxiedUrl = new URL(url.toString());
    proxiedUrl.hostname = '127.0.0.1';
    proxiedUrl.port = String(proxy.port);
    const logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
    proxied = await createPgClient({
      connectionString: proxiedUrl.toString(),
      connectTimeoutMs: 1000,
      logger,
    });
    tenancy = await createTenancy({
      master: proxied,
      connectionString: proxiedUrl.toString(),
      databasePrefix: PREFIX,
      logger,
    });
    directory = createPostgresDirectory({ tenancy, logger });
  }, 60_000);

  afterAll(async () => {
    await directory?.close();
    await tenancy?.close();
    await proxied?.close();
    await proxy?.cut();
    await adminDirectory?.close();
    await admin?.close();
    if (direct) {
      const r = await direct.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
        [PREFIX],
      );
      for (const { datname } of r.rows)
        await direct.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await db?.dispose();
  }, 60_000);

  it('refuses with SERVICE_UNAVAILABLE while the database is away, without crashing, and recovers by itself', async () => {
    const escaped = escapedErrors();
    try {
      for (const id of ['out-s', 'out-d']) {
        expect((await directory.resolve(principal(id, 'u1'))).roles).toEqual(['ops']);
      }

      await proxy.cut();
      for (const id of ['out-s', 'out-d']) {
        expect(await outcome(directory.resolve(principal(id, 'cold')))).toBe('SERVICE_UNAVAILABLE');
        expect(await outcome(directory.resolve(principal(id, 'u1')))).toBe('SERVICE_UNAVAILABLE');
      }
      expect(await outcome(tenancy.handle('never-seen'))).toBe('SERVICE_UNAVAILABLE');
      expect(
        await outcome(
          directory.admin.grant('out-s', 'u2', { roles: ['ops'] }, { issuer: 'https://idp.test' }),
        ),
      ).toBe('SERVICE_UNAVAILABLE');
      expect(await outcome(tenancy.migrate())).toBe('SERVICE_UNAVAILABLE');

      // Meanwhile another replica, which still reaches the database, revokes: this one misses the notification.
      expect(
        await adminDirectory.admin.revoke('out-s', 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' }),
      ).toBe(1);
      await new Promise((r) => setTimeout(r, 300));
      expect(await outcome(directory.resolve(principal('out-s', 'u1')))).toBe('SERVICE_UNAVAILABLE');

      await proxy.restore();
      // Service resumes by itself, and the grant revoked during the outage is not served.
      await within(10_000, async () => (await outcome(directory.resolve(principal('out-s', 'u1')))) === 'OK');
      expect((await directory.resolve(principal('out-s', 'u1'))).roles).toEqual([]);
      expect((await directory.resolve(principal('out-d', 'u1'))).roles).toEqual(['ops']);

      // The listener is back: changes made elsewhere arrive again (first after its resync, then within 1 s).
      await adminDirectory.admin.grant('out-s', 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' });
      await within(5000, async () => (await directory.resolve(principal('out-s', 'u1'))).roles.length === 1);
      await adminDirectory.admin.revoke('out-d', 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' });
      await within(1000, async () => (await directory.resolve(principal('out-d', 'u1'))).roles.length === 0);
      await adminDirectory.admin.grant('out-d', 'u1', { roles: ['ops'] }, { issuer: 'https://idp.test' });
      await within(1000, async () => (await directory.resolve(principal('out-d', 'u1'))).roles.length === 1);

      expect(escaped.errors).toEqual([]);
    } finally {
      escaped.stop();
    }
  });

  it('stops serving a warm principal within about the tenant-record TTL of a cut', async () => {
    const escaped = escapedErrors();
    try {
      for (const id of ['out-s', 'out-d']) {
        expect((await directory.resolve(principal(id, 'u1'))).roles).toEqual(['ops']);
      }
      await proxy.cut();
      const started = Date.now();
      for (const id of ['out-s', 'out-d']) {
        await within(
          3000,
          async () => (await outcome(directory.resolve(principal(id, 'u1')))) === 'SERVICE_UNAVAILABLE',
        );
      }
      // 1 s of tenant-record TTL plus scheduling slack on a busy machine.
      expect(Date.now() - started).toBeLessThan(2000);
      await proxy.restore();
      await within(10_000, async () => (await outcome(directory.resolve(principal('out-d', 'u1')))) === 'OK');
      expect((await directory.resolve(principal('out-s', 'u1'))).roles).toEqual(['ops']);
      expect(escaped.errors).toEqual([]);
    } finally {
      escaped.stop();
    }
  });
});
