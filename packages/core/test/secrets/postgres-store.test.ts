import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MasterKeyRing } from '../../src/env.js';
import { parseMasterKey } from '../../src/env.js';
import { silentLogger } from '../../src/logger.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import { createPostgresSecretBackend, type PostgresSecretBackend } from '../../src/secrets/postgres-store.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';
import { outcome, secretBackendContract, testClock } from './helpers/contract.js';

const key = (byte: number) => Buffer.alloc(32, byte).toString('base64');
const RING_1 = parseMasterKey(`k1:${key(1)}`);
const RING_2 = parseMasterKey(`k2:${key(2)},k1:${key(1)}`);
const RING_2_ONLY = parseMasterKey(`k2:${key(2)}`);

/** A client that counts the statements sent through it. */
function counting(client: SqlClient): { client: SqlClient; count(): number } {
  let n = 0;
  const wrapped: SqlClient = {
    ...client,
    kind: client.kind,
    notifiesAcrossConnections: client.notifiesAcrossConnections,
    query: (text, params) => {
      n++;
      return client.query(text, params);
    },
    transaction: (fn) => {
      n++;
      return client.transaction(fn);
    },
    exec: (sql) => client.exec(sql),
    listen: (channel, handler, options) => client.listen(channel, handler, options),
    notify: (channel, payload) => client.notify(channel, payload),
    close: () => client.close(),
  };
  return { client: wrapped, count: () => n };
}

for (const engine of TEST_DATABASES) {
  const tenants = [`a${randomBytes(3).toString('hex')}`, `b${randomBytes(3).toString('hex')}`] as const;

  // The contract: PGlite always, PostgreSQL when PG_URL is set.
  secretBackendContract(`postgres store on ${engine.name}`, async () => {
    const db = await engine.create();
    const master = await db.open();
    const clock = testClock();
    const counted = counting(master);
    const tenancy = await createTenancy({ master: counted.client, logger: silentLogger });
    await tenancy.migrate();
    for (const t of tenants) await tenancy.create(t);
    const otherTenancy = await createTenancy({ master: await db.open(), logger: silentLogger });
    const backend = createPostgresSecretBackend({ tenancy, masterKey: RING_1, clock: clock.clock });
    const other = createPostgresSecretBackend({
      tenancy: otherTenancy,
      masterKey: RING_1,
      clock: clock.clock,
    });
    return {
      backend,
      other,
      clock,
      tenants,
      io: counted.count,
      async close() {
        await backend.close();
        await other.close();
        await tenancy.close();
        await otherTenancy.close();
        await db.dispose();
      },
    };
  });

  describe(`postgres store on ${engine.name}: encryption at rest`, () => {
    let db: TestDatabase;
    let master: SqlClient;
    let tenancy: Tenancy;
    const T = `enc${randomBytes(3).toString('hex')}`;
    const table = `"tenant_${T}".service_secrets`;
    const store = (ring: MasterKeyRing): PostgresSecretBackend =>
      createPostgresSecretBackend({ tenancy, masterKey: ring, logger: silentLogger });

    beforeAll(async () => {
      db = await engine.create();
      master = await db.open();
      tenancy = await createTenancy({ master, logger: silentLogger });
      await tenancy.migrate();
      await tenancy.create(T);
    });
    afterAll(async () => {
      await tenancy?.close();
      await db?.dispose();
    });

    const rowsText = async () =>
      (await master.query<{ t: string }>(`SELECT t::text AS t FROM ${table} t`)).rows
        .map((r) => r.t)
        .join('\n');

    it('keeps only ciphertext: a canary value appears in no column, in text or in hex', async () => {
      const canary = `CANARY-${randomBytes(12).toString('hex')}`;
      const backend = store(RING_1);
      await backend.write(T, {
        name: 'Canary Service',
        url: 'https://canary.example',
        credentials: { access_token: canary, refresh_token: `${canary}-refresh` },
      });
      await backend.rotate(T, 'Canary Service', { access_token: `${canary}-2` }, { graceMs: 60_000 });
      const text = await rowsText();
      expect(text).toContain('Canary Service');
      expect(text).not.toContain(canary);
      expect(text.toLowerCase()).not.toContain(Buffer.from(canary).toString('hex'));
      expect(text).not.toContain(Buffer.from(canary).toString('base64').slice(0, 20));
      expect((await backend.read(T, 'Canary Service'))?.credentials.access_token).toBe(`${canary}-2`);
    });

    it('each version has its own data key, wrapped under the ring key it names', async () => {
      const backend = store(RING_1);
      await backend.write(T, { name: 'Keys', credentials: { token: 'k-1' } });
      await backend.rotate(T, 'Keys', { token: 'k-2' }, { graceMs: 60_000 });
      const rows = (
        await master.query<{ wrapped_key: Uint8Array; key_id: string }>(
          `SELECT wrapped_key, key_id FROM ${table} WHERE name = 'Keys' ORDER BY version`,
        )
      ).rows;
      expect(rows.map((r) => r.key_id)).toEqual(['k1', 'k1']);
      expect(Buffer.from(rows[0]!.wrapped_key).equals(Buffer.from(rows[1]!.wrapped_key))).toBe(false);
    });

    it('tampered ciphertext, a swapped data key or an altered URL or requirement: INTERNAL, never a value', async () => {
      const backend = store(RING_1);
      const tamper = async (name: string, statement: string, params: unknown[] = []) => {
        await backend.write(T, {
          name,
          url: 'https://good.example',
          credentials: { access_token: 'must-not-leak' },
          requirement: { roles: ['admin'] },
        });
        const own = (
          await master.query<{ c: Uint8Array }>(`SELECT ciphertext AS c FROM ${table} WHERE name = $1`, [
            name,
          ])
        ).rows[0]!.c;
        const flipped = Buffer.from(own);
        flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
        await master.query(statement, [name, ...params.map((p) => (p === FLIPPED ? flipped : p))]);
        const error = await backend.read(T, name).catch((e: unknown) => e);
        expect((error as { code?: string }).code, name).toBe('INTERNAL');
        expect(String((error as Error).message)).not.toContain('must-not-leak');
      };
      const FLIPPED = Symbol('flipped');
      await tamper('Flipped', `UPDATE ${table} SET ciphertext = $2 WHERE name = $1`, [FLIPPED]);
      await tamper('Url', `UPDATE ${table} SET url = 'https://attacker.example' WHERE name = $1`);
      await tamper('Requirement', `UPDATE ${table} SET requirement = NULL WHERE name = $1`);
      await tamper('Metadata', `UPDATE ${table} SET metadata = '{"x":"y"}'::jsonb WHERE name = $1`);
      await backend.write(T, { name: 'Donor', credentials: { access_token: 'donor' } });
      await tamper(
        'Swapped',
        `UPDATE ${table} SET wrapped_key = (SELECT wrapped_key FROM ${table} WHERE name = 'Donor'),
           ciphertext = (SELECT ciphertext FROM ${table} WHERE name = 'Donor') WHERE name = $1`,
      );
      // A row moved to another version number does not open either.
      await tamper('Moved', `UPDATE ${table} SET version = 7 WHERE name = $1`);
    });

    it('rewrapAll after a master-key rotation: reads never stop, ciphertexts stay, the old key can go', async () => {
      const T = `rw${randomBytes(3).toString('hex')}`;
      const table = `"tenant_${T}".service_secrets`;
      await tenancy.create(T);
      const old = store(RING_1);
      for (let i = 0; i < 5; i++)
        await old.write(T, { name: `Rewrap ${i}`, credentials: { token: `rewrap-${i}` } });
      await old.rotate(T, 'Rewrap 0', { token: 'rewrap-0b' }, { graceMs: 60_000 });
      const before = (
        await master.query<{ name: string; version: number; ciphertext: Uint8Array }>(
          `SELECT name, version, ciphertext FROM ${table} WHERE name LIKE 'Rewrap %' ORDER BY name, version`,
        )
      ).rows;

      // New active key k2, k1 kept: everything still reads, new versions use k2.
      const rotated = store(RING_2);
      expect((await rotated.read(T, 'Rewrap 1'))?.credentials).toEqual({ token: 'rewrap-1' });
      await rotated.write(T, { name: 'Rewrap new', credentials: { token: 'rewrap-new' } });
      // Without k1 the old rows do not open yet.
      expect(await outcome(store(RING_2_ONLY).read(T, 'Rewrap 1'))).toBe('INTERNAL');

      const result = await rotated.rewrapAll(T);
      expect(result).toEqual({ tenants: 1, rewrapped: 6, failed: 0 });
      const ids = (await master.query<{ key_id: string }>(`SELECT DISTINCT key_id FROM ${table}`)).rows;
      expect(ids.map((r) => r.key_id)).toEqual(['k2']);
      const after = (
        await master.query<{ name: string; version: number; ciphertext: Uint8Array }>(
          `SELECT name, version, ciphertext FROM ${table} WHERE name LIKE 'Rewrap %' AND name <> 'Rewrap new' ORDER BY name, version`,
        )
      ).rows;
      expect(after.map((r) => Buffer.from(r.ciphertext).toString('hex'))).toEqual(
        before.map((r) => Buffer.from(r.ciphertext).toString('hex')),
      );
      // k1 can leave the ring now.
      const k2Only = store(RING_2_ONLY);
      for (let i = 1; i < 5; i++) {
        expect((await k2Only.read(T, `Rewrap ${i}`))?.credentials).toEqual({ token: `rewrap-${i}` });
      }
      expect((await k2Only.read(T, 'Rewrap 0', { version: 1 }))?.credentials).toEqual({ token: 'rewrap-0' });
      expect((await k2Only.rewrapAll()).rewrapped).toBe(0);
    });

    it('rewrapAll while reads go on', async () => {
      const T = `rb${randomBytes(3).toString('hex')}`;
      await tenancy.create(T);
      const old = store(RING_1);
      for (let i = 0; i < 20; i++)
        await old.write(T, { name: `Busy ${i}`, credentials: { token: `busy-${i}` } });
      const rotated = store(RING_2);
      let stop = false;
      const reads = (async () => {
        let n = 0;
        while (!stop) {
          const s = await rotated.read(T, `Busy ${n % 20}`);
          expect(s?.credentials.token).toBe(`busy-${n % 20}`);
          n++;
        }
        return n;
      })();
      const result = await rotated.rewrapAll(T);
      stop = true;
      expect(await reads).toBeGreaterThan(0);
      expect(result).toEqual({ tenants: 1, rewrapped: 20, failed: 0 });
    });

    it('rewrapAll over every tenant reports rows it cannot unwrap (the tampered ones) and goes on', async () => {
      const result = await store(RING_2).rewrapAll();
      expect(result.tenants).toBeGreaterThanOrEqual(3);
      // 'Swapped' holds another row's wrapped key, 'Moved' a key wrapped for another version.
      expect(result.failed).toBe(2);
      expect(result.rewrapped).toBeGreaterThan(0);
      expect((await store(RING_2).rewrapAll()).rewrapped).toBe(0);
    });

    it('an unknown tenant is TENANT_UNKNOWN; a disabled one is never served but can be administered', async () => {
      const backend = store(RING_1);
      expect(await outcome(backend.read('no-such-tenant', 'x'))).toBe('TENANT_UNKNOWN');
      const D = `dis${randomBytes(3).toString('hex')}`;
      await tenancy.create(D);
      await backend.write(D, { name: 'Held', credentials: { token: 'held' } });
      await tenancy.disable(D);
      expect(await outcome(backend.read(D, 'Held'))).toBe('TENANT_UNKNOWN');
      expect(await backend.delete(D, 'Held')).toBe(true);
    });

    it('a closed store refuses: SERVICE_UNAVAILABLE', async () => {
      const backend = store(RING_1);
      await backend.close();
      expect(await outcome(backend.read(T, 'Keys'))).toBe('SERVICE_UNAVAILABLE');
    });
  });
}
