/**
 * The contract every secret backend keeps, written once and run against each (encrypted PostgreSQL on PGlite
 * and on real PostgreSQL, Vault through the fake and, when configured, a real Vault).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthSecError, isAuthSecError } from '../../../src/errors.js';
import type { SecretBackend } from '../../../src/secrets/types.js';
import { hasVersionProbe } from '../../../src/secrets/version-probe.js';

/** A clock tests move by hand. */
export interface TestClock {
  now: number;
  readonly clock: () => number;
  advance(ms: number): void;
}

/** A {@link TestClock} starting at the real time. */
export function testClock(): TestClock {
  const c: TestClock = {
    now: Date.now(),
    clock: () => c.now,
    advance(ms) {
      c.now += ms;
    },
  };
  return c;
}

/** What a backend's test file hands the contract. */
export interface ContractHarness {
  readonly backend: SecretBackend;
  /** A second instance over the same store, as another process (the CLI, a replica) would open it. */
  readonly other: SecretBackend;
  /** The clock both instances were given. */
  readonly clock: TestClock;
  /** Two registered tenants. */
  readonly tenants: readonly [string, string];
  /** How many I/O operations (SQL statements, HTTP requests) have been made so far. */
  io(): number;
  close(): Promise<void>;
}

/** `'OK'`, or the code of the AuthSecError `promise` rejects with. */
export async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

/** The AuthSecError `promise` rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<AuthSecError> {
  const result = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in result)) throw new Error('expected a rejection');
  if (!isAuthSecError(result.error)) throw result.error;
  return result.error;
}

/** Tenant ids that must never name anything. */
export const HOSTILE_TENANTS: readonly unknown[] = [
  '',
  'Acme',
  '../acme',
  'acme/../../x',
  'a b',
  "acme'; DROP TABLE x; --",
  'acme"',
  '-acme',
  'a'.repeat(56),
  'acme\n',
  'acme%2f..',
  undefined,
  null,
  42,
  { toString: () => 'acme' },
];

const unique = (label: string) => `${label} ${randomBytes(3).toString('hex')}`;

/** Registers the contract suite for one backend. */
export function secretBackendContract(label: string, setup: () => Promise<ContractHarness>): void {
  describe(`secret backend contract: ${label}`, () => {
    let h: ContractHarness;
    let A: string;
    let B: string;

    beforeAll(async () => {
      h = await setup();
      [A, B] = h.tenants;
    });
    afterAll(async () => {
      await h?.close();
    });

    it('writes and reads a service with a name holding spaces; versions start at 1', async () => {
      const name = unique('GitHub API Integration');
      const written = await h.backend.write(A, {
        name,
        serviceType: 'github',
        authType: 'bearer',
        url: 'https://api.github.example',
        credentials: { access_token: 'ghp_contract_1' },
        metadata: { owner: 'platform team' },
        requirement: { scopes: ['read'] },
      });
      expect(written).toMatchObject({ name, version: 1, credentials: { access_token: 'ghp_contract_1' } });
      expect(Object.isFrozen(written)).toBe(true);
      const read = await h.backend.read(A, name);
      expect(read).toMatchObject({
        name,
        serviceType: 'github',
        authType: 'bearer',
        url: 'https://api.github.example',
        credentials: { access_token: 'ghp_contract_1' },
        metadata: { owner: 'platform team' },
        requirement: { scopes: ['read'] },
        version: 1,
      });
      expect(typeof read?.updatedAt).toBe('number');
      // Another process sees it at once.
      expect((await h.other.read(A, name))?.credentials).toEqual({ access_token: 'ghp_contract_1' });
    });

    it('an unknown service reads as undefined; optional fields read as undefined', async () => {
      expect(await h.backend.read(A, unique('Nothing Here'))).toBeUndefined();
      const name = unique('Bare');
      await h.backend.write(A, { name, credentials: { token: 't-bare' } });
      expect(await h.backend.read(A, name)).toMatchObject({
        serviceType: undefined,
        authType: undefined,
        url: undefined,
        requirement: undefined,
        metadata: {},
      });
    });

    it('lists names, metadata and keys, never values', async () => {
      const name = unique('Listed Service');
      await h.backend.write(A, {
        name,
        serviceType: 'api',
        credentials: { client_id: 'listed-client-id-value', client_secret: 'listed-secret-value' },
        metadata: { team: 'x' },
      });
      const list = await h.backend.list(A);
      const item = list.find((s) => s.name === name);
      expect(item).toMatchObject({ name, serviceType: 'api', metadata: { team: 'x' }, version: 1 });
      expect(item?.keys).toEqual(['client_id', 'client_secret']);
      const text = JSON.stringify(list);
      expect(text).not.toContain('listed-secret-value');
      expect(text).not.toContain('listed-client-id-value');
      expect(list.map((s) => s.name)).toEqual([...list.map((s) => s.name)].sort());
    });

    it('a second write replaces the values: a new version, the previous one gone at once', async () => {
      const name = unique('Replaced');
      await h.backend.write(A, { name, credentials: { token: 'v1-value' } });
      const second = await h.backend.write(A, { name, credentials: { token: 'v2-value' } });
      expect(second.version).toBe(2);
      expect((await h.backend.read(A, name))?.credentials).toEqual({ token: 'v2-value' });
      expect(await h.backend.read(A, name, { version: 1 })).toBeUndefined();
      expect((await h.backend.read(A, name, { version: 2 }))?.credentials).toEqual({ token: 'v2-value' });
    });

    it('rotate keeps the description, and the previous version readable until the grace period ends', async () => {
      const name = unique('Rotated Service');
      await h.backend.write(A, {
        name,
        url: 'https://rotated.example',
        credentials: { access_token: 'before-rotation' },
        requirement: { roles: ['admin'] },
      });
      const rotated = await h.other.rotate(A, name, { access_token: 'after-rotation' }, { graceMs: 60_000 });
      expect(rotated).toMatchObject({
        version: 2,
        url: 'https://rotated.example',
        requirement: { roles: ['admin'] },
      });
      // The first instance sees the new value on its next read: nothing to restart.
      expect((await h.backend.read(A, name))?.credentials).toEqual({ access_token: 'after-rotation' });
      expect((await h.backend.read(A, name, { version: 1 }))?.credentials).toEqual({
        access_token: 'before-rotation',
      });
      h.clock.advance(59_000);
      expect(await h.backend.read(A, name, { version: 1 })).toBeDefined();
      h.clock.advance(2_000);
      expect(await h.backend.read(A, name, { version: 1 })).toBeUndefined();
      expect((await h.backend.read(A, name))?.version).toBe(2);
      // The next write cleans up; the current version is untouched by the expiry.
      await h.backend.rotate(A, name, { access_token: 'third' });
      expect(await h.backend.read(A, name, { version: 1 })).toBeUndefined();
      expect(await h.backend.read(A, name, { version: 2 })).toBeUndefined();
      expect((await h.backend.read(A, name))?.credentials).toEqual({ access_token: 'third' });
    });

    it('rotate without grace drops the previous version at once; rotating an unknown service is NOT_FOUND', async () => {
      const name = unique('No Grace');
      await h.backend.write(A, { name, credentials: { token: 'old' } });
      await h.backend.rotate(A, name, { token: 'new' });
      expect(await h.backend.read(A, name, { version: 1 })).toBeUndefined();
      expect(await outcome(h.backend.rotate(A, unique('Missing'), { token: 'x' }))).toBe('NOT_FOUND');
      expect(await outcome(h.backend.rotate(A, name, {}))).toBe('BAD_REQUEST');
      expect(await outcome(h.backend.rotate(A, name, { token: 'x' }, { graceMs: -1 }))).toBe('BAD_REQUEST');
    });

    it('deletes every version; deleting again says it did not exist', async () => {
      const name = unique('Deleted');
      await h.backend.write(A, { name, credentials: { token: 'gone-soon' } });
      await h.backend.rotate(A, name, { token: 'gone-soon-2' }, { graceMs: 60_000 });
      expect(await h.other.delete(A, name)).toBe(true);
      expect(await h.backend.read(A, name)).toBeUndefined();
      expect(await h.backend.read(A, name, { version: 1 })).toBeUndefined();
      expect((await h.backend.list(A)).map((s) => s.name)).not.toContain(name);
      expect(await h.backend.delete(A, name)).toBe(false);
    });

    it('tenants are isolated: same name, separate values; B reads nothing of A', async () => {
      const name = unique('Shared Name');
      const onlyA = unique('Only In A');
      await h.backend.write(A, { name, credentials: { token: 'tenant-a-value' } });
      await h.backend.write(A, { name: onlyA, credentials: { token: 'only-a-value' } });
      expect(await h.backend.read(B, name)).toBeUndefined();
      expect(await h.backend.read(B, onlyA)).toBeUndefined();
      expect(JSON.stringify(await h.backend.list(B))).not.toContain(onlyA);
      expect(await outcome(h.backend.rotate(B, onlyA, { token: 'x' }))).toBe('NOT_FOUND');
      expect(await h.backend.delete(B, onlyA)).toBe(false);
      await h.backend.write(B, { name, credentials: { token: 'tenant-b-value' } });
      expect((await h.backend.read(B, name))?.credentials).toEqual({ token: 'tenant-b-value' });
      expect((await h.backend.read(A, name))?.credentials).toEqual({ token: 'tenant-a-value' });
      expect(await h.backend.delete(B, name)).toBe(true);
      expect((await h.backend.read(A, name))?.credentials).toEqual({ token: 'tenant-a-value' });
    });

    it('names that look like paths stay names, inside their own tenant', async () => {
      const name = `../${A}/x ${randomBytes(2).toString('hex')}`;
      await h.backend.write(B, { name, credentials: { token: 'path-like' } });
      expect((await h.backend.read(B, name))?.credentials).toEqual({ token: 'path-like' });
      expect(JSON.stringify(await h.backend.list(A))).not.toContain('path-like');
      expect(await h.backend.read(A, name)).toBeUndefined();
      expect(await h.backend.delete(B, name)).toBe(true);
    });

    it('refuses hostile tenant ids before any SQL or HTTP', async () => {
      const before = h.io();
      for (const tenant of HOSTILE_TENANTS) {
        const t = tenant as string;
        expect(await outcome(h.backend.read(t, 'GitHub API Integration')), String(tenant)).toBe(
          'BAD_REQUEST',
        );
        expect(await outcome(h.backend.list(t))).toBe('BAD_REQUEST');
        expect(await outcome(h.backend.write(t, { name: 'x', credentials: { token: 'y' } }))).toBe(
          'BAD_REQUEST',
        );
        expect(await outcome(h.backend.rotate(t, 'x', { token: 'y' }))).toBe('BAD_REQUEST');
        expect(await outcome(h.backend.delete(t, 'x'))).toBe('BAD_REQUEST');
      }
      expect(h.io()).toBe(before);
    });

    it('refuses malformed names and input before any SQL or HTTP', async () => {
      const before = h.io();
      for (const name of ['', ' padded', 'padded ', 'line\nbreak', 'nul\u0000', 'x'.repeat(129), 7]) {
        expect(await outcome(h.backend.read(A, name as string))).toBe('BAD_REQUEST');
        expect(await outcome(h.backend.write(A, { name: name as string, credentials: { t: 'v' } }))).toBe(
          'BAD_REQUEST',
        );
      }
      const bad = [
        { name: 'ok', credentials: {} },
        { name: 'ok', credentials: { token: '' } },
        { name: 'ok', credentials: { 'bad key': 'v' } },
        { name: 'ok', credentials: { token: 5 } },
        { name: 'ok', credentials: { token: 'v' }, url: 'javascript:alert(1)' },
        { name: 'ok', credentials: { token: 'v' }, url: 'https://user:pw@host.example' },
        { name: 'ok', credentials: { token: 'v' }, requirement: { roles: 'admin' } },
        { name: 'ok', credentials: { token: 'v' }, requirement: { colour: ['x'] } },
        { name: 'ok', credentials: { token: 'v' }, metadata: { k: 1 } },
      ];
      for (const input of bad) {
        expect(await outcome(h.backend.write(A, input as never)), JSON.stringify(input)).toBe('BAD_REQUEST');
      }
      expect(await outcome(h.backend.read(A, 'ok', { version: 0 }))).toBe('BAD_REQUEST');
      expect(h.io()).toBe(before);
    });

    it('the version probe follows writes, rotations and deletes', async () => {
      if (!hasVersionProbe(h.backend)) return;
      const name = unique('Probed');
      expect(await h.backend.currentVersion(A, name)).toBeUndefined();
      await h.backend.write(A, { name, credentials: { token: 'p1' } });
      expect(await h.backend.currentVersion(A, name)).toBe(1);
      await h.other.rotate(A, name, { token: 'p2' });
      expect(await h.backend.currentVersion(A, name)).toBe(2);
      expect(await h.backend.currentVersion(B, name)).toBeUndefined();
      await h.other.delete(A, name);
      expect(await h.backend.currentVersion(A, name)).toBeUndefined();
    });
  });
}
