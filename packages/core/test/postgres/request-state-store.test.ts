import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import {
  createPostgresRequestStateStore,
  ensureRequestStateSchema,
} from '../../src/postgres/request-state-store.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createRequestStateSealer } from '../../src/request-state.js';
import type { Principal } from '../../src/types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

const JOHN = Object.freeze({
  subject: 'john',
  email: undefined,
  tenantId: 'acme-corp',
  clientId: undefined,
  issuer: 'https://idp.test',
  roles: [],
  groups: [],
  scopes: [],
  resources: [],
  permissions: [],
  expiresAt: Math.floor(Date.now() / 1000) + 300,
  claims: {},
}) as Principal;

describe.each(TEST_DATABASES)('request states consumed in $name', ({ create }) => {
  let db: TestDatabase;
  let sql: SqlClient;
  const schema = `rs_${process.pid}`;
  beforeAll(async () => {
    db = await create();
    sql = await db.open();
    await ensureRequestStateSchema(sql, schema);
  });
  afterAll(async () => {
    await db?.dispose();
  });

  it('consumes an id once, across two replicas sharing the database', async () => {
    const keys = { activeKid: 'k1', keys: new Map([['k1', randomBytes(32)]]) };
    const a = createRequestStateSealer({ keys, store: createPostgresRequestStateStore({ sql, schema }) });
    const b = createRequestStateSealer({ keys, store: createPostgresRequestStateStore({ sql, schema }) });
    const state = a.seal({ step: 1 }, { principal: JOHN, method: 'tools/call', target: 'refund' });
    expect((await b.open(state, JOHN, 'tools/call')).payload).toEqual({ step: 1 });
    const again = await a.open(state, JOHN, 'tools/call').then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isAuthSecError(again) && again.details.reason).toBe('replayed');
  });

  it('purges expired ids, and refuses (SERVICE_UNAVAILABLE) when the database does not answer', async () => {
    const store = createPostgresRequestStateStore({ sql, schema, purgeEvery: 1 });
    expect(await store.consume(randomUUID(), Date.now() - 1000)).toBe(true);
    expect(await store.consume(randomUUID(), Date.now() + 60_000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const left = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".request_states_used WHERE expires_at < now()`,
    );
    expect(left.rows[0]?.n).toBe(0);
    const broken = createPostgresRequestStateStore({
      sql: { query: async () => Promise.reject(new Error('connection refused')) },
    });
    const error = await Promise.resolve(broken.consume(randomUUID(), Date.now() + 1000)).catch(
      (e: unknown) => e,
    );
    expect(isAuthSecError(error) && error.code).toBe('SERVICE_UNAVAILABLE');
    expect(() => createPostgresRequestStateStore({ sql: undefined as never })).toThrow(TypeError);
  });
});
