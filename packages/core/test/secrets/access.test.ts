import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit.js';
import type { AuthSec } from '../../src/engine.js';
import { parseMasterKey } from '../../src/env.js';
import { AuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import {
  clearServiceCache,
  createServiceAccess,
  createServiceAccessFactory,
} from '../../src/secrets/access.js';
import { createPostgresSecretBackend, type PostgresSecretBackend } from '../../src/secrets/postgres-store.js';
import type { SecretBackend } from '../../src/secrets/types.js';
import type { SecretVersionProbe } from '../../src/secrets/version-probe.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';
import { outcome, rejection, testClock } from './helpers/contract.js';
import { principal, testEngine } from './helpers/engine.js';

const RING = parseMasterKey(Buffer.alloc(32, 3).toString('base64'));

/** A backend that counts reads and version probes, and can make probes fail. */
function counting(inner: PostgresSecretBackend) {
  const counts = { read: 0, probe: 0 };
  let probeFails = false;
  const backend: SecretBackend & SecretVersionProbe = {
    kind: inner.kind,
    write: (t, i) => inner.write(t, i),
    read: (t, n, o) => {
      counts.read++;
      return inner.read(t, n, o);
    },
    list: (t) => inner.list(t),
    rotate: (t, n, c, o) => inner.rotate(t, n, c, o),
    delete: (t, n) => inner.delete(t, n),
    close: () => inner.close(),
    currentVersion: async (t, n) => {
      counts.probe++;
      if (probeFails) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The secret store is unavailable');
      return inner.currentVersion(t, n);
    },
  };
  return {
    backend,
    counts,
    failProbes: (fail: boolean) => {
      probeFails = fail;
    },
  };
}

describe.each(TEST_DATABASES)('ServiceAccess over the postgres store on $name', ({ create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let tenancy: Tenancy;
  let otherTenancy: Tenancy;
  let store: PostgresSecretBackend;
  /** The same store opened by "another process" (the CLI, another replica). */
  let otherProcess: PostgresSecretBackend;
  let authsec: AuthSec;
  let events: AuditEvent[];
  const clock = testClock();
  const A = `sa${randomBytes(3).toString('hex')}`;
  const B = `sb${randomBytes(3).toString('hex')}`;
  const reader = principal(A, 'reader', { scopes: ['read'] });
  const admin = principal(A, 'boss', { roles: ['admin'], scopes: ['read'] });
  const readerOfB = principal(B, 'reader-b', { scopes: ['read'] });

  beforeAll(async () => {
    db = await create();
    master = await db.open();
    tenancy = await createTenancy({ master, logger: silentLogger });
    await tenancy.migrate();
    await tenancy.create(A);
    await tenancy.create(B);
    otherTenancy = await createTenancy({ master: await db.open(), logger: silentLogger });
    store = createPostgresSecretBackend({ tenancy, masterKey: RING, clock: clock.clock });
    otherProcess = createPostgresSecretBackend({
      tenancy: otherTenancy,
      masterKey: RING,
      clock: clock.clock,
    });
    ({ authsec, events } = testEngine());
    await store.write(A, {
      name: 'GitHub API Integration',
      serviceType: 'github',
      authType: 'bearer',
      url: 'https://api.github.example',
      credentials: { access_token: 'ghp_access_value', refresh_token: 'ghr_refresh_value' },
      metadata: { owner: 'platform' },
    });
    await store.write(A, { name: 'Legacy', credentials: { token: 'legacy-token-value' } });
    await store.write(A, { name: 'Keyless', credentials: { api_key: 'keyless-api-key-value' } });
    await store.write(A, {
      name: 'Admin Only',
      credentials: { access_token: 'admin-only-value' },
      requirement: { roles: ['admin'] },
    });
    await store.write(A, {
      name: 'Needs Write',
      credentials: { access_token: 'needs-write-value' },
      requirement: { scopes: ['write'] },
    });
    await store.write(B, { name: 'Tenant B Service', credentials: { access_token: 'tenant-b-value' } });
  });
  afterAll(async () => {
    await authsec?.close();
    await tenancy?.close();
    await otherTenancy?.close();
    await db?.dispose();
  });

  const access = (who = reader, backend: SecretBackend = store, cacheTtlMs?: number) =>
    createServiceAccess({
      backend,
      principal: who,
      authsec,
      clock: clock.clock,
      ...(cacheTtlMs === undefined ? {} : { cacheTtlMs }),
    });

  it('getServiceCredentials: the brief’s shape, frozen, read for the caller’s tenant', async () => {
    const credentials = await access().getServiceCredentials('GitHub API Integration');
    expect(credentials).toEqual({
      serviceName: 'GitHub API Integration',
      serviceType: 'github',
      authType: 'bearer',
      url: 'https://api.github.example',
      credentials: { access_token: 'ghp_access_value', refresh_token: 'ghr_refresh_value' },
      metadata: { owner: 'platform' },
      retrievedAt: clock.now,
    });
    expect(Object.isFrozen(credentials)).toBe(true);
    expect(Object.isFrozen(credentials.credentials)).toBe(true);
  });

  it('getServiceToken: access_token, else token, else a clear NOT_FOUND', async () => {
    expect(await access().getServiceToken('GitHub API Integration')).toBe('ghp_access_value');
    expect(await access().getServiceToken('Legacy')).toBe('legacy-token-value');
    const error = await rejection(access().getServiceToken('Keyless'));
    expect(error.code).toBe('NOT_FOUND');
    expect(error.message).toBe("Service 'Keyless' has no access_token or token");
    expect(error.message).not.toContain('keyless-api-key-value');
  });

  it('an unknown service is NOT_FOUND, the same answer whether another tenant has it or nobody does', async () => {
    const elsewhere = await rejection(access(readerOfB).getServiceCredentials('GitHub API Integration'));
    const nowhere = await rejection(access(readerOfB).getServiceCredentials('GitHub API Integration 2'));
    expect(elsewhere.code).toBe('NOT_FOUND');
    expect(nowhere.code).toBe('NOT_FOUND');
    expect(elsewhere.message.replace('GitHub API Integration', 'X')).toBe(
      nowhere.message.replace('GitHub API Integration 2', 'X'),
    );
    expect(await outcome(access(reader).getServiceToken('Tenant B Service'))).toBe('NOT_FOUND');
    expect(await access(readerOfB).getServiceToken('Tenant B Service')).toBe('tenant-b-value');
  });

  it('a service’s requirement is checked like a tool’s: PERMISSION_DENIED, INSUFFICIENT_SCOPE, allowed', async () => {
    expect(await outcome(access(reader).getServiceToken('Admin Only'))).toBe('PERMISSION_DENIED');
    expect(await access(admin).getServiceToken('Admin Only')).toBe('admin-only-value');
    const scope = await rejection(access(reader).getServiceToken('Needs Write'));
    expect(scope.code).toBe('INSUFFICIENT_SCOPE');
    expect(scope.details.scopes).toEqual(expect.arrayContaining(['write']));
    expect(scope.message).not.toContain('needs-write-value');
  });

  it('every read is a service.read audit event (service, caller, decision, reason), never a value', async () => {
    const start = events.length;
    await access(admin).getServiceToken('Admin Only');
    await access(reader)
      .getServiceToken('Admin Only')
      .catch(() => {});
    await access(reader)
      .getServiceToken('Nope')
      .catch(() => {});
    await access(reader)
      .getServiceToken('bad\nname')
      .catch(() => {});
    const recorded = events.slice(start);
    expect(recorded).toEqual([
      expect.objectContaining({
        action: 'service.read',
        decision: 'allow',
        subject: 'boss',
        tenantId: A,
        target: 'Admin Only',
        reason: undefined,
      }),
      expect.objectContaining({
        action: 'service.read',
        decision: 'deny',
        subject: 'reader',
        target: 'Admin Only',
        reason: 'PERMISSION_DENIED',
        failed: ['roles'],
      }),
      expect.objectContaining({ decision: 'deny', target: 'Nope', reason: 'NOT_FOUND' }),
      expect.objectContaining({ decision: 'deny', target: undefined, reason: 'BAD_REQUEST' }),
    ]);
    const text = JSON.stringify(events);
    for (const value of ['ghp_access_value', 'ghr_refresh_value', 'admin-only-value', 'legacy-token-value']) {
      expect(text).not.toContain(value);
    }
  });

  it('listServices: names and metadata of what the caller may read, never values', async () => {
    const names = async (who = reader) => (await access(who).listServices()).map((s) => s.serviceName);
    expect(await names()).toEqual(['GitHub API Integration', 'Keyless', 'Legacy']);
    expect(await names(admin)).toEqual(['Admin Only', 'GitHub API Integration', 'Keyless', 'Legacy']);
    expect(await names(readerOfB)).toEqual(['Tenant B Service']);
    const list = await access(reader).listServices();
    expect(list[0]).toEqual({
      serviceName: 'GitHub API Integration',
      serviceType: 'github',
      url: 'https://api.github.example',
      metadata: { owner: 'platform' },
    });
    expect(JSON.stringify(list)).not.toMatch(/value/);
  });

  it('the cache: a value is read once, then revalidated by version only', async () => {
    const c = counting(store);
    const a = access(reader, c.backend);
    expect(await a.getServiceToken('GitHub API Integration')).toBe('ghp_access_value');
    expect(c.counts).toEqual({ read: 1, probe: 0 });
    // Shared across ServiceAccess objects over the same backend (a factory makes one per call).
    const factory = createServiceAccessFactory({ backend: c.backend, authsec, clock: clock.clock });
    expect(await factory(reader).getServiceToken('GitHub API Integration')).toBe('ghp_access_value');
    expect(await factory(admin).getServiceToken('GitHub API Integration')).toBe('ghp_access_value');
    expect(c.counts).toEqual({ read: 1, probe: 2 });
    // Past the TTL, a full read again.
    clock.advance(30_001);
    await a.getServiceToken('GitHub API Integration');
    expect(c.counts).toEqual({ read: 2, probe: 2 });
    // Per tenant: B's cache is its own.
    expect(await outcome(access(readerOfB, c.backend).getServiceToken('GitHub API Integration'))).toBe(
      'NOT_FOUND',
    );
  });

  it('rotation through another process: the next call uses the new value, without a restart', async () => {
    const c = counting(store);
    const services = createServiceAccessFactory({ backend: c.backend, authsec, clock: clock.clock });
    await store.write(A, { name: 'Rotating', credentials: { access_token: 'rotation-v1' } });
    expect(await services(reader).getServiceToken('Rotating')).toBe('rotation-v1');
    expect(await services(reader).getServiceToken('Rotating')).toBe('rotation-v1');
    // The CLI (another process, another store instance) rotates; no notification reaches this one.
    await otherProcess.rotate(A, 'Rotating', { access_token: 'rotation-v2' }, { graceMs: 60_000 });
    expect(await services(reader).getServiceToken('Rotating')).toBe('rotation-v2');
    expect(await services(reader).getServiceToken('Rotating')).toBe('rotation-v2');
    // Deleted elsewhere: gone on the next call.
    await otherProcess.delete(A, 'Rotating');
    expect(await outcome(services(reader).getServiceToken('Rotating'))).toBe('NOT_FOUND');
    await otherProcess.write(A, { name: 'Rotating', credentials: { access_token: 'rotation-v3' } });
    expect(await services(reader).getServiceToken('Rotating')).toBe('rotation-v3');
  });

  it('when the store cannot confirm the version, no cached value is served: SERVICE_UNAVAILABLE, audited', async () => {
    const c = counting(store);
    const a = access(reader, c.backend);
    await a.getServiceToken('Legacy');
    c.failProbes(true);
    const start = events.length;
    expect(await outcome(a.getServiceToken('Legacy'))).toBe('SERVICE_UNAVAILABLE');
    expect(events.slice(start)).toEqual([
      expect.objectContaining({ action: 'service.read', decision: 'error', reason: 'SERVICE_UNAVAILABLE' }),
    ]);
    c.failProbes(false);
    expect(await a.getServiceToken('Legacy')).toBe('legacy-token-value');
    // And the cache can be dropped by hand.
    clearServiceCache(c.backend);
    const reads = c.counts.read;
    await a.getServiceToken('Legacy');
    expect(c.counts.read).toBe(reads + 1);
  });

  it('cacheTtlMs 0: every call reads', async () => {
    const c = counting(store);
    const a = access(reader, c.backend, 0);
    await a.getServiceToken('Legacy');
    await a.getServiceToken('Legacy');
    expect(c.counts).toEqual({ read: 2, probe: 0 });
  });

  it('a backend without a version probe is never cached', async () => {
    const { currentVersion: _probe, ...plain } = counting(store).backend;
    let reads = 0;
    const backend: SecretBackend = {
      ...plain,
      read: (t, n, o) => {
        reads++;
        return store.read(t, n, o);
      },
    };
    const a = access(reader, backend);
    await a.getServiceToken('Legacy');
    await a.getServiceToken('Legacy');
    expect(reads).toBe(2);
  });

  it('a stored requirement the engine cannot compile: refused (INTERNAL), audited as an error, hidden from lists', async () => {
    const broken: SecretBackend = {
      ...store,
      kind: 'test',
      read: async (t, n) => {
        const real = await store.read(t, n);
        return real && { ...real, requirement: { colour: ['red'] } as never };
      },
      list: async (t) =>
        (await store.list(t)).map((s) => ({ ...s, requirement: { colour: ['red'] } as never })),
    };
    const start = events.length;
    expect(await outcome(access(reader, broken).getServiceToken('Legacy'))).toBe('INTERNAL');
    expect(events.slice(start)).toEqual([expect.objectContaining({ decision: 'error', reason: 'INTERNAL' })]);
    expect(await access(reader, broken).listServices()).toEqual([]);
  });

  it('misuse is a TypeError at creation', () => {
    expect(() => createServiceAccess({ backend: store, authsec, principal: undefined as never })).toThrow(
      TypeError,
    );
    expect(() => createServiceAccessFactory({ backend: {} as never, authsec })).toThrow(TypeError);
    expect(() => createServiceAccessFactory({ backend: store, authsec, cacheTtlMs: -1 })).toThrow(TypeError);
  });
});
