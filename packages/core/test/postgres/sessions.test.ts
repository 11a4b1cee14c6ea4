/**
 * The Postgres session store: the shared contract on PGlite and on real PostgreSQL (PG_URL), then what only a
 * database can show: nothing secret in any table, tampering and wrong keys refused, key rotation, replicas.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MasterKeyRing } from '../../src/env.js';
import { isAuthSecError } from '../../src/errors.js';
import { migrateSchema, registeredMigrations } from '../../src/postgres/migrations.js';
import {
  createPostgresSessionStore,
  ensureSessionSchema,
  type PostgresSessionStoreOptions,
  SESSION_MIGRATIONS,
} from '../../src/postgres/sessions.js';
import { createPgClient, type SqlClient } from '../../src/postgres/sql.js';
import type { SessionStore } from '../../src/sessions.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';
import {
  authInput,
  codeOf,
  describeSessionStoreContract,
  keyRing,
  login,
  manualClock,
  pendingInput,
  sha256,
} from '../sessions.test.js';

const KEY_1 = keyRing(['k1', 1]);
let schemaCounter = 0;
const newSchema = () => `sessions_${process.pid}_${++schemaCounter}`;

describe.each(TEST_DATABASES)('Postgres session store on $name', ({ create }) => {
  let db: TestDatabase;
  let sql: SqlClient;

  beforeAll(async () => {
    db = await create();
    sql = await db.open();
  });
  afterAll(async () => {
    await db?.dispose();
  });

  describeSessionStoreContract('postgres', () => ({
    async create(options) {
      const schema = newSchema();
      await ensureSessionSchema(sql, schema);
      return createPostgresSessionStore({ masterKey: KEY_1, ...options, sql, schema });
    },
  }));

  /** A fresh schema and a factory of stores on it (several stores = several replicas when given other pools). */
  async function world(): Promise<{
    schema: string;
    c: ReturnType<typeof manualClock>;
    make(options?: Partial<PostgresSessionStoreOptions>): SessionStore;
  }> {
    const schema = newSchema();
    await ensureSessionSchema(sql, schema);
    const c = manualClock();
    return {
      schema,
      c,
      make: (options = {}) =>
        createPostgresSessionStore({
          sql,
          schema,
          masterKey: KEY_1,
          clock: c.clock,
          cleanupIntervalMs: 0,
          ...options,
        }),
    };
  }

  /** Every row of every table outside the system schemas, as text (bytea both as hex and as UTF-8). */
  async function dumpDatabase(): Promise<string> {
    const tables = await sql.query<{ table_schema: string; table_name: string }>(
      `SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    expect(tables.rows.length).toBeGreaterThan(0);
    const parts: string[] = [];
    for (const t of tables.rows) {
      const rows = await sql.query(`SELECT * FROM "${t.table_schema}"."${t.table_name}"`);
      for (const row of rows.rows) {
        for (const value of Object.values(row)) {
          if (value instanceof Uint8Array) {
            parts.push(Buffer.from(value).toString('hex'), Buffer.from(value).toString('utf8'));
            parts.push(Buffer.from(value).toString('latin1'), Buffer.from(value).toString('base64'));
          } else {
            parts.push(String(value));
          }
        }
      }
    }
    return parts.join('\n');
  }

  it('registers its migrations for the master scope and applies them once', async () => {
    expect(registeredMigrations('master')).toEqual(expect.arrayContaining([...SESSION_MIGRATIONS]));
    const schema = newSchema();
    expect(await ensureSessionSchema(sql, schema)).toBe(SESSION_MIGRATIONS.length);
    expect(await ensureSessionSchema(sql, schema)).toBe(0);
    await expect(ensureSessionSchema(sql, 'bad"; DROP SCHEMA x; --')).rejects.toThrow(TypeError);
    expect(() => createPostgresSessionStore({ sql, schema: 'Bad Name', masterKey: KEY_1 })).toThrow(
      TypeError,
    );
  });

  it('gives live sessions stored without an issuer to the single issuer, and logs them out otherwise', async () => {
    const legacy = async () => {
      const schema = newSchema();
      await migrateSchema(sql, 'master', schema, SESSION_MIGRATIONS.slice(0, 1));
      const row = (id: string, expiresAt: number) =>
        sql.query(
          `INSERT INTO "${schema}".login_sessions (id_hash, binding_hash, status, tenant_id, subject, tokens_sealed, created_at, authenticated_at, expires_at)
           VALUES ($1, $2, 'authenticated', 'acme-corp', 'alice', '\\x00', 1, 1, $3)`,
          [sha256(id), sha256('binding'), expiresAt],
        );
      await row('live', Date.now() + 3_600_000);
      await row('expired', 1000);
      return schema;
    };
    const read = async (schema: string) =>
      (
        await sql.query<{ id_hash: string; status: string; issuer: string | null }>(
          `SELECT id_hash, status, issuer FROM "${schema}".login_sessions ORDER BY expires_at DESC`,
        )
      ).rows.map((r) => [r.status, r.issuer]);

    const one = await legacy();
    await migrateSchema(sql, 'master', one, SESSION_MIGRATIONS, { issuers: ['https://idp-a.test'] });
    expect(await read(one)).toEqual([
      ['authenticated', 'https://idp-a.test'],
      ['authenticated', null],
    ]);
    const several = await legacy();
    await migrateSchema(sql, 'master', several, SESSION_MIGRATIONS, {
      issuers: ['https://idp-a.test', 'https://idp-b.test'],
    });
    expect(await read(several)).toEqual([
      ['logged_out', null],
      ['authenticated', null],
    ]);
  });

  it('stores no session id, state, binding, token, verifier or nonce in any table', async () => {
    const { make, c } = await world();
    const store = make();
    const pendingOnly = pendingInput('secret-binding-1');
    const waiting = await store.createPending(pendingOnly);
    const consumedOnly = await store.createPending(pendingInput('secret-binding-2'));
    await store.consumePending(consumedOnly.state);
    const pending = pendingInput('secret-binding-3');
    const { sessionId, state } = await store.createPending(pending);
    await store.consumePending(state);
    const auth = authInput(c.now);
    await store.authenticate(sessionId, auth);
    await store.updateTokens(sessionId, {
      accessToken: 'access-refreshed-xyz',
      refreshToken: 'refresh-rotated-xyz',
      expiresAt: c.now + 1,
    });

    const dump = await dumpDatabase();
    expect(dump).toContain(sha256(sessionId));
    const secrets = [
      waiting.sessionId,
      waiting.state,
      pendingOnly.codeVerifier,
      pendingOnly.nonce,
      pendingOnly.redirectUri,
      consumedOnly.sessionId,
      consumedOnly.state,
      sessionId,
      state,
      pending.codeVerifier,
      'secret-binding-1',
      'secret-binding-3',
      auth.accessToken,
      auth.refreshToken!,
      auth.idToken!,
      'access-refreshed-xyz',
      'refresh-rotated-xyz',
    ];
    for (const secret of secrets) expect(dump.includes(secret), `leaked ${secret}`).toBe(false);
  });

  it('refuses tampered or moved ciphertext with INTERNAL', async () => {
    const { make, c, schema } = await world();
    const store = make();
    const a = await login(store, c.now, 'alice');
    const b = await login(store, c.now, 'bob');
    await sql.query(
      `UPDATE "${schema}".login_sessions
          SET tokens_sealed = set_byte(tokens_sealed, length(tokens_sealed) - 1, get_byte(tokens_sealed, length(tokens_sealed) - 1) # 1)
        WHERE id_hash = $1`,
      [sha256(a.sessionId)],
    );
    expect(await codeOf(store.tokens(a.sessionId))).toBe('INTERNAL');
    expect(await codeOf(store.updateTokens(a.sessionId, { accessToken: 'x', expiresAt: c.now + 1 }))).toBe(
      'INTERNAL',
    );
    // A valid ciphertext copied onto another row does not open there (AAD = the row's id hash).
    await sql.query(
      `UPDATE "${schema}".login_sessions SET tokens_sealed = (SELECT tokens_sealed FROM "${schema}".login_sessions WHERE id_hash = $1)
        WHERE id_hash = $2`,
      [sha256(b.sessionId), sha256(a.sessionId)],
    );
    expect(await codeOf(store.tokens(a.sessionId))).toBe('INTERNAL');
    expect((await store.tokens(b.sessionId))?.accessToken).toBeDefined();

    const p = await store.createPending(pendingInput());
    await sql.query(
      `UPDATE "${schema}".login_sessions SET pending_sealed = set_byte(pending_sealed, 40, get_byte(pending_sealed, 40) # 1)
        WHERE id_hash = $1`,
      [sha256(p.sessionId)],
    );
    expect(await codeOf(store.consumePending(p.state))).toBe('INTERNAL');
  });

  it('refuses data sealed under another master key with INTERNAL', async () => {
    const { make, c } = await world();
    const store = make();
    const other = make({ masterKey: keyRing(['k1', 2]) });
    const { sessionId } = await login(store, c.now);
    expect(await codeOf(other.tokens(sessionId))).toBe('INTERNAL');
    const { state } = await store.createPending(pendingInput());
    expect(await codeOf(other.consumePending(state))).toBe('INTERNAL');
    // The failed consume rolled back: the right key still completes the login.
    expect((await store.consumePending(state)).pending.codeVerifier).toMatch(/^verifier-/);
  });

  it('opens rows sealed under an old key after rotation', async () => {
    const { make, c } = await world();
    const before = make({ masterKey: keyRing(['k1', 1]) });
    const old = await login(before, c.now);
    const oldPending = await before.createPending(pendingInput());
    const rotated = make({ masterKey: keyRing(['k2', 9], ['k1', 1]) });
    expect((await rotated.tokens(old.sessionId))?.accessToken).toBe(old.input.accessToken);
    await rotated.consumePending(oldPending.state);
    await rotated.updateTokens(old.sessionId, { accessToken: 'after-rotation', expiresAt: c.now + 1000 });
    const fresh = await login(rotated, c.now, 'bob');
    expect((await rotated.tokens(old.sessionId))?.accessToken).toBe('after-rotation');
    // New data is sealed under the new key: a replica still on the old ring cannot open it.
    expect(await codeOf(before.tokens(fresh.sessionId))).toBe('INTERNAL');
    expect(await codeOf(before.tokens(old.sessionId))).toBe('INTERNAL');
  });

  it('serves every replica from the same rows, with one winner per state', async () => {
    const { schema, c } = await world();
    const sqlB = await db.open();
    const options = {
      schema,
      masterKey: KEY_1,
      clock: c.clock,
      cleanupIntervalMs: 0,
      maxSessionsPerSubject: 2,
    };
    const a = createPostgresSessionStore({ ...options, sql });
    const b = createPostgresSessionStore({ ...options, sql: sqlB });

    const created = await a.createPending(pendingInput('conn-a'));
    expect((await b.get(created.sessionId, 'conn-a'))?.status).toBe('pending');
    const { sessionId } = await b.consumePending(created.state);
    expect(await codeOf(a.consumePending(created.state))).toBe('NOT_FOUND');
    const input = authInput(c.now);
    await a.authenticate(sessionId, input);
    expect((await b.tokens(sessionId))?.refreshToken).toBe(input.refreshToken);
    await b.updateTokens(sessionId, { accessToken: 'from-b', expiresAt: c.now + 1000 });
    expect((await a.tokens(sessionId))?.accessToken).toBe('from-b');

    for (let round = 0; round < 10; round++) {
      const { state } = await a.createPending(pendingInput(`race-${round}`));
      const results = await Promise.allSettled([a.consumePending(state), b.consumePending(state)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected');
      expect(isAuthSecError(lost?.reason) && lost.reason.code).toBe('NOT_FOUND');
    }

    // Concurrent logins of one subject on both replicas still leave at most maxSessionsPerSubject.
    const logins = await Promise.all(
      Array.from({ length: 6 }, (_, i) => login(i % 2 === 0 ? a : b, c.now, 'carol', `conn-c${i}`)),
    );
    expect(logins).toHaveLength(6);
    const live = (await b.listForSubject('acme-corp', 'carol')).filter((s) => s.status === 'authenticated');
    expect(live).toHaveLength(2);

    expect(await b.logout(sessionId, 'conn-a')).toBe(true);
    expect((await a.get(sessionId))?.status).toBe('logged_out');
  });

  it('counts the pending limits across replicas', async () => {
    const { schema, c } = await world();
    const sqlB = await db.open();
    const options = {
      schema,
      masterKey: KEY_1,
      clock: c.clock,
      cleanupIntervalMs: 0,
      maxPendingPerBinding: 3,
    };
    const a = createPostgresSessionStore({ ...options, sql });
    const b = createPostgresSessionStore({ ...options, sql: sqlB });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).createPending(pendingInput('same-binding'))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of results) {
      if (r.status === 'rejected') expect(isAuthSecError(r.reason) && r.reason.code).toBe('BAD_REQUEST');
    }
  });
});

describe('Postgres session store without a database', () => {
  it('fails closed with SERVICE_UNAVAILABLE when the database cannot be reached', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
      });
    });
    const sql = await createPgClient({
      connectionString: `postgresql://postgres@127.0.0.1:${port}/none`,
      connectTimeoutMs: 500,
    });
    const masterKey: MasterKeyRing = KEY_1;
    const store = createPostgresSessionStore({ sql, masterKey, cleanupIntervalMs: 0 });
    try {
      expect(await codeOf(store.createPending(pendingInput()))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.consumePending('A'.repeat(43)))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.get('A'.repeat(43)))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.tokens('A'.repeat(43)))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.cleanup())).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await store.close();
      await sql.close();
    }
  });

  it('requires a key ring and a client (CONFIG_INVALID)', () => {
    const thrownBy = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const fake = {} as SqlClient;
    const noKey = thrownBy(() =>
      createPostgresSessionStore({ sql: fake } as unknown as PostgresSessionStoreOptions),
    );
    expect(isAuthSecError(noKey) && noKey.code).toBe('CONFIG_INVALID');
    const noClient = thrownBy(() => createPostgresSessionStore({ sql: fake, masterKey: KEY_1 }));
    expect(isAuthSecError(noClient) && noClient.code).toBe('CONFIG_INVALID');
  });
});
