/**
 * The session store contract, written once and run against every store: here against the memory store, and
 * from test/postgres/sessions.test.ts against the Postgres store on PGlite and on real PostgreSQL.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { MasterKeyRing } from '../src/env.js';
import { parseMasterKey } from '../src/env.js';
import { type AuthSecErrorCode, isAuthSecError } from '../src/errors.js';
import {
  type AuthenticatedSessionInput,
  createMemorySessionStore,
  type PendingSessionInput,
  type SessionStore,
  type SessionStoreOptions,
} from '../src/sessions.js';

/** Start of test time; every test moves its own clock from here. */
export const T0 = 1_800_000_000_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A key ring made of deterministic test keys, `kid:fill` pairs, the first active. */
export function keyRing(...keys: readonly [kid: string, fill: number][]): MasterKeyRing {
  return parseMasterKey(
    keys.map(([kid, fill]) => `${kid}:${Buffer.alloc(32, fill).toString('base64')}`).join(','),
  );
}

/** A manual clock. */
export function manualClock(start = T0): { now: number; readonly clock: () => number } {
  const c = {
    now: start,
    clock: () => c.now,
  };
  return c;
}

/** The code of the AuthSecError `promise` rejects with (fails when it resolves or throws something else). */
export async function codeOf(promise: Promise<unknown>): Promise<AuthSecErrorCode> {
  try {
    await promise;
  } catch (error) {
    if (isAuthSecError(error)) return error.code;
    throw error;
  }
  throw new Error('expected the call to be refused');
}

/** SHA-256 hex, as the stores hash ids. */
export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Options a contract test passes to a store factory. */
export type ContractStoreOptions = SessionStoreOptions & { readonly masterKey?: MasterKeyRing };

/** What the contract needs from a store implementation. */
export interface SessionStoreHarness {
  /** A store with its own empty data (a fresh schema for Postgres), with these options. */
  create(options: ContractStoreOptions): Promise<SessionStore>;
}

/** A pending input with distinct, recognisable secrets. */
export function pendingInput(
  binding = 'conn-1',
  extra: Partial<PendingSessionInput> = {},
): PendingSessionInput {
  return {
    codeVerifier: `verifier-${Math.random().toString(36).slice(2)}-${'v'.repeat(40)}`,
    nonce: `nonce-${Math.random().toString(36).slice(2)}`,
    redirectUri: 'http://127.0.0.1:53682/callback',
    binding,
    ...extra,
  };
}

/** An authenticated input for `subject` whose access token lives an hour after `now`. */
export function authInput(
  now: number,
  subject = 'alice',
  extra: Partial<AuthenticatedSessionInput> = {},
): AuthenticatedSessionInput {
  return {
    subject,
    tenantId: 'acme-corp',
    accessToken: `access-${subject}-${Math.random().toString(36).slice(2)}`,
    refreshToken: `refresh-${subject}-${Math.random().toString(36).slice(2)}`,
    idToken: `id-${subject}-${Math.random().toString(36).slice(2)}`,
    expiresAt: now + HOUR,
    ...extra,
  };
}

/** Runs the whole login on `store`: create, consume, authenticate. Returns the session id. */
export async function login(
  store: SessionStore,
  now: number,
  subject = 'alice',
  binding = 'conn-1',
  extra: Partial<AuthenticatedSessionInput> = {},
): Promise<{ sessionId: string; input: AuthenticatedSessionInput }> {
  const { state } = await store.createPending(pendingInput(binding));
  const { sessionId } = await store.consumePending(state);
  const input = authInput(now, subject, extra);
  await store.authenticate(sessionId, input);
  return { sessionId, input };
}

/** The contract every {@link SessionStore} passes. */
export function describeSessionStoreContract(name: string, harness: () => SessionStoreHarness): void {
  describe(`session store contract: ${name}`, () => {
    const open = async (options: ContractStoreOptions = {}) => {
      const c = manualClock();
      const store = await harness().create({ clock: c.clock, cleanupIntervalMs: 0, ...options });
      return { store, c };
    };

    it('runs pending -> consume -> authenticate -> get/tokens', async () => {
      const { store, c } = await open();
      const input = pendingInput();
      const created = await store.createPending(input);
      expect(created.expiresAt).toBe(T0 + 10 * MINUTE);
      expect((await store.get(created.sessionId))?.status).toBe('pending');

      c.now += MINUTE;
      const consumed = await store.consumePending(created.state);
      expect(consumed.sessionId).toBe(created.sessionId);
      expect(consumed.pending).toEqual({
        codeVerifier: input.codeVerifier,
        nonce: input.nonce,
        redirectUri: input.redirectUri,
        expiresAt: created.expiresAt,
      });

      const auth = authInput(c.now);
      await store.authenticate(created.sessionId, auth);
      const record = await store.get(created.sessionId, 'conn-1');
      expect(record).toEqual({
        idHash: sha256(created.sessionId),
        status: 'authenticated',
        subject: 'alice',
        tenantId: 'acme-corp',
        createdAt: T0,
        authenticatedAt: T0 + MINUTE,
        expiresAt: T0 + MINUTE + 8 * HOUR,
      });
      expect(record).not.toHaveProperty('sessionId');
      expect(await store.tokens(created.sessionId)).toEqual({
        accessToken: auth.accessToken,
        refreshToken: auth.refreshToken,
        idToken: auth.idToken,
        expiresAt: auth.expiresAt,
      });
      await store.close();
    });

    it('issues 43-character base64url session ids and states, all different', async () => {
      const { store } = await open({ maxPendingPerBinding: 20 });
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const { sessionId, state } = await store.createPending(pendingInput());
        expect(sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
        seen.add(sessionId).add(state);
      }
      expect(seen.size).toBe(20);
    });

    it('consumes a state once; unknown, malformed and session-id states are NOT_FOUND', async () => {
      const { store } = await open();
      const { sessionId, state } = await store.createPending(pendingInput());
      expect(await codeOf(store.consumePending(sessionId))).toBe('NOT_FOUND');
      await store.consumePending(state);
      expect(await codeOf(store.consumePending(state))).toBe('NOT_FOUND');
      expect(await codeOf(store.consumePending('A'.repeat(43)))).toBe('NOT_FOUND');
      expect(await codeOf(store.consumePending(''))).toBe('NOT_FOUND');
      expect(await codeOf(store.consumePending('x'.repeat(100_000)))).toBe('NOT_FOUND');
      expect(await codeOf(store.consumePending(undefined as unknown as string))).toBe('NOT_FOUND');
    });

    it('lets only one of two concurrent consumes win', async () => {
      const { store } = await open();
      for (let round = 0; round < 5; round++) {
        const { state } = await store.createPending(pendingInput(`race-${round}`));
        const results = await Promise.allSettled([store.consumePending(state), store.consumePending(state)]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const rejected = results.find((r) => r.status === 'rejected');
        expect(isAuthSecError(rejected?.reason) && rejected.reason.code).toBe('NOT_FOUND');
      }
    });

    it('authenticates only a consumed, unexpired pending login, once', async () => {
      const { store, c } = await open();
      const { sessionId, state } = await store.createPending(pendingInput());
      expect(await codeOf(store.authenticate(sessionId, authInput(c.now)))).toBe('NOT_FOUND');
      await store.consumePending(state);
      await store.authenticate(sessionId, authInput(c.now, 'alice'));
      expect(await codeOf(store.authenticate(sessionId, authInput(c.now, 'mallory')))).toBe('NOT_FOUND');
      expect((await store.get(sessionId))?.subject).toBe('alice');
      expect(await codeOf(store.authenticate('B'.repeat(43), authInput(c.now)))).toBe('NOT_FOUND');
      expect(await codeOf(store.authenticate('short', authInput(c.now)))).toBe('NOT_FOUND');

      const late = await store.createPending(pendingInput());
      await store.consumePending(late.state);
      c.now = late.expiresAt;
      expect(await codeOf(store.authenticate(late.sessionId, authInput(c.now)))).toBe('NOT_FOUND');
    });

    it('expires pending logins and sessions by the injected clock', async () => {
      const { store, c } = await open();
      const pending = await store.createPending(pendingInput());
      c.now = pending.expiresAt - 1;
      expect((await store.get(pending.sessionId))?.status).toBe('pending');
      c.now = pending.expiresAt;
      expect((await store.get(pending.sessionId))?.status).toBe('expired');
      const err = await store.consumePending(pending.state).catch((e: unknown) => e);
      expect(isAuthSecError(err) && err.code).toBe('NOT_FOUND');
      expect(isAuthSecError(err) && err.message).toMatch(/expired/);
      // The expired state is burnt too.
      expect(await codeOf(store.consumePending(pending.state))).toBe('NOT_FOUND');

      const { sessionId } = await login(store, c.now);
      const expiresAt = (await store.get(sessionId))!.expiresAt;
      c.now = expiresAt - 1;
      expect((await store.get(sessionId))?.status).toBe('authenticated');
      c.now = expiresAt;
      expect((await store.get(sessionId))?.status).toBe('expired');
      expect(await store.tokens(sessionId)).toBeUndefined();
      expect(await codeOf(store.updateTokens(sessionId, { accessToken: 'a', expiresAt: c.now + HOUR }))).toBe(
        'NOT_FOUND',
      );
      expect(await store.logout(sessionId)).toBe(false);
    });

    it('clamps lifetimes to the configured maxima', async () => {
      const { store, c } = await open({ pendingTtlMs: 5 * MINUTE, sessionTtlMs: 2 * HOUR });
      expect((await store.createPending(pendingInput('a', { ttlMs: 24 * HOUR }))).expiresAt).toBe(
        T0 + 5 * MINUTE,
      );
      expect((await store.createPending(pendingInput('b', { ttlMs: MINUTE }))).expiresAt).toBe(T0 + MINUTE);

      const long = await login(store, c.now, 'alice', 'c', { sessionTtlMs: 365 * 24 * HOUR });
      expect((await store.get(long.sessionId))?.expiresAt).toBe(T0 + 2 * HOUR);
      const short = await login(store, c.now, 'alice', 'd', { sessionTtlMs: 30 * MINUTE });
      expect((await store.get(short.sessionId))?.expiresAt).toBe(T0 + 30 * MINUTE);
      // Without a refresh token the session cannot outlive its access token.
      const noRefresh = await login(store, c.now, 'bob', 'e', {
        refreshToken: undefined,
        expiresAt: T0 + 20 * MINUTE,
      });
      expect((await store.get(noRefresh.sessionId))?.expiresAt).toBe(T0 + 20 * MINUTE);
      expect(
        await codeOf(login(store, c.now, 'bob', 'f', { refreshToken: undefined, expiresAt: T0 - 1 })),
      ).toBe('TOKEN_EXPIRED');
    });

    it('stores fractional clock readings and token expiries as whole milliseconds', async () => {
      const { store, c } = await open();
      c.now = T0 + 0.75;
      const { sessionId } = await login(store, c.now, 'alice', 'conn-1', { expiresAt: T0 + HOUR + 0.5 });
      expect((await store.get(sessionId))?.createdAt).toBe(T0);
      expect((await store.tokens(sessionId))?.expiresAt).toBe(T0 + HOUR);
      await expect(
        store.updateTokens(sessionId, { accessToken: 'a', expiresAt: Number.POSITIVE_INFINITY }),
      ).rejects.toThrow(TypeError);
    });

    it('hides a session from another binding', async () => {
      const { store, c } = await open();
      const pending = await store.createPending(pendingInput('conn-1'));
      expect(await store.get(pending.sessionId, 'conn-2')).toBeUndefined();
      expect((await store.get(pending.sessionId, 'conn-1'))?.status).toBe('pending');

      const { sessionId } = await login(store, c.now, 'alice', 'conn-1');
      expect(await store.get(sessionId, 'conn-2')).toBeUndefined();
      expect(await store.get(sessionId, 'conn-1 ')).toBeUndefined();
      expect(await store.tokens(sessionId, 'conn-2')).toBeUndefined();
      expect(await store.logout(sessionId, 'conn-2')).toBe(false);
      expect((await store.get(sessionId, 'conn-1'))?.status).toBe('authenticated');
      expect(await store.tokens(sessionId, 'conn-1')).toBeDefined();
      expect(await store.logout(sessionId, 'conn-1')).toBe(true);
    });

    it('reads malformed and unknown session ids as not found', async () => {
      const { store } = await open();
      for (const id of ['', 'abc', 'C'.repeat(43), 'x'.repeat(10_000)]) {
        expect(await store.get(id)).toBeUndefined();
        expect(await store.tokens(id)).toBeUndefined();
        expect(await store.logout(id)).toBe(false);
        expect(await codeOf(store.updateTokens(id, { accessToken: 'a', expiresAt: T0 + HOUR }))).toBe(
          'NOT_FOUND',
        );
      }
    });

    it('limits pending logins per binding (BAD_REQUEST) and in all (SERVICE_UNAVAILABLE)', async () => {
      const { store, c } = await open({ maxPending: 5, maxPendingPerBinding: 2 });
      await store.createPending(pendingInput('a'));
      await store.createPending(pendingInput('a'));
      expect(await codeOf(store.createPending(pendingInput('a')))).toBe('BAD_REQUEST');
      await store.createPending(pendingInput('b'));
      await store.createPending(pendingInput('b'));
      await store.createPending(pendingInput('c'));
      expect(await codeOf(store.createPending(pendingInput('d')))).toBe('SERVICE_UNAVAILABLE');
      // Expired pending logins no longer count.
      c.now += 11 * MINUTE;
      await store.createPending(pendingInput('a'));
      await store.createPending(pendingInput('a'));
      await store.createPending(pendingInput('d'));
    });

    it('keeps at most maxSessionsPerSubject sessions, logging out the oldest', async () => {
      const { store, c } = await open({ maxSessionsPerSubject: 2, maxPendingPerBinding: 10 });
      const first = await login(store, c.now);
      c.now += 1000;
      const second = await login(store, c.now);
      c.now += 1000;
      const other = await login(store, c.now, 'bob');
      const otherTenant = await login(store, c.now, 'alice', 'conn-1', { tenantId: 'globex' });
      c.now += 1000;
      const third = await login(store, c.now);
      expect((await store.get(first.sessionId))?.status).toBe('logged_out');
      expect(await store.tokens(first.sessionId)).toBeUndefined();
      expect((await store.get(second.sessionId))?.status).toBe('authenticated');
      expect((await store.get(third.sessionId))?.status).toBe('authenticated');
      expect((await store.get(other.sessionId))?.status).toBe('authenticated');
      expect((await store.get(otherTenant.sessionId))?.status).toBe('authenticated');

      const listed = await store.listForSubject('acme-corp', 'alice');
      expect(listed.map((s) => [s.idHash, s.status])).toEqual([
        [sha256(first.sessionId), 'logged_out'],
        [sha256(second.sessionId), 'authenticated'],
        [sha256(third.sessionId), 'authenticated'],
      ]);
      expect(await store.listForSubject('globex', 'alice')).toHaveLength(1);
      expect(await store.listForSubject('acme-corp', 'nobody')).toEqual([]);
    });

    it('keys the per-subject limit and listing by (issuer, subject)', async () => {
      const { store, c } = await open({ maxSessionsPerSubject: 1, maxPendingPerBinding: 10 });
      const ofA = await login(store, c.now, 'alice', 'conn-1', { issuer: 'https://idp-a.test' });
      c.now += 1000;
      // The same sub from another issuer is someone else: it does not log A's alice out.
      const ofB = await login(store, c.now, 'alice', 'conn-1', { issuer: 'https://idp-b.test' });
      expect((await store.get(ofA.sessionId))?.status).toBe('authenticated');
      expect((await store.get(ofB.sessionId))?.issuer).toBe('https://idp-b.test');
      c.now += 1000;
      const againA = await login(store, c.now, 'alice', 'conn-1', { issuer: 'https://idp-a.test' });
      expect((await store.get(ofA.sessionId))?.status).toBe('logged_out');
      expect((await store.get(ofB.sessionId))?.status).toBe('authenticated');
      expect(
        (await store.listForSubject('acme-corp', 'alice', 'https://idp-a.test')).map((s) => s.idHash),
      ).toEqual([sha256(ofA.sessionId), sha256(againA.sessionId)]);
      expect(
        (await store.listForSubject('acme-corp', 'alice', 'https://idp-b.test')).map((s) => s.idHash),
      ).toEqual([sha256(ofB.sessionId)]);
      expect(await store.listForSubject('acme-corp', 'alice')).toHaveLength(3);
      await expect(store.listForSubject('acme-corp', 'alice', '')).rejects.toThrow(TypeError);
    });

    it('logs out authenticated and pending sessions', async () => {
      const { store, c } = await open();
      const { sessionId } = await login(store, c.now);
      expect(await store.logout(sessionId)).toBe(true);
      expect((await store.get(sessionId))?.status).toBe('logged_out');
      expect(await store.tokens(sessionId)).toBeUndefined();
      expect(await store.logout(sessionId)).toBe(false);
      expect(await codeOf(store.updateTokens(sessionId, { accessToken: 'a', expiresAt: c.now + HOUR }))).toBe(
        'NOT_FOUND',
      );

      const pending = await store.createPending(pendingInput());
      expect(await store.logout(pending.sessionId)).toBe(true);
      expect(await codeOf(store.consumePending(pending.state))).toBe('NOT_FOUND');
    });

    it('updates tokens after a refresh, keeping the session, subject and expiry', async () => {
      const { store, c } = await open();
      const { sessionId, input } = await login(store, c.now);
      const before = await store.get(sessionId);
      c.now += 50 * MINUTE;
      await store.updateTokens(sessionId, { accessToken: 'access-2', expiresAt: c.now + HOUR });
      expect(await store.tokens(sessionId)).toEqual({
        accessToken: 'access-2',
        refreshToken: input.refreshToken,
        idToken: input.idToken,
        expiresAt: c.now + HOUR,
      });
      await store.updateTokens(sessionId, {
        accessToken: 'access-3',
        refreshToken: 'refresh-3',
        expiresAt: c.now + 2 * HOUR,
      });
      expect(await store.tokens(sessionId)).toMatchObject({
        accessToken: 'access-3',
        refreshToken: 'refresh-3',
      });
      expect(await store.get(sessionId)).toEqual(before);
      await expect(store.updateTokens(sessionId, { accessToken: '', expiresAt: c.now })).rejects.toThrow(
        TypeError,
      );
    });

    it('cleanup deletes expired rows only', async () => {
      const { store, c } = await open({ maxPendingPerBinding: 10 });
      const pending = await store.createPending(pendingInput());
      const short = await login(store, c.now, 'alice', 'conn-1', { sessionTtlMs: 20 * MINUTE });
      const long = await login(store, c.now, 'bob');
      const gone = await login(store, c.now, 'carol');
      await store.logout(gone.sessionId);
      expect(await store.cleanup()).toBe(0);
      c.now += 30 * MINUTE;
      expect(await store.cleanup()).toBe(2);
      expect(await store.get(pending.sessionId)).toBeUndefined();
      expect(await store.get(short.sessionId)).toBeUndefined();
      // A logged-out row holds no secret any more; it stays (as a tombstone) until its expiry.
      expect((await store.get(gone.sessionId))?.status).toBe('logged_out');
      expect((await store.get(long.sessionId))?.status).toBe('authenticated');
      c.now += 9 * HOUR;
      expect(await store.cleanup()).toBe(2);
      expect(await store.get(long.sessionId)).toBeUndefined();
    });

    it('treats wrong argument types as TypeError', async () => {
      const { store, c } = await open();
      await expect(store.createPending({ ...pendingInput(), binding: '' })).rejects.toThrow(TypeError);
      await expect(
        store.createPending({ ...pendingInput(), codeVerifier: 1 as unknown as string }),
      ).rejects.toThrow(TypeError);
      await expect(store.createPending(pendingInput('a', { ttlMs: -1 }))).rejects.toThrow(TypeError);
      const { state, sessionId } = await store.createPending(pendingInput());
      await store.consumePending(state);
      await expect(
        store.authenticate(sessionId, authInput(c.now, 'alice', { tenantId: '../x' })),
      ).rejects.toThrow(TypeError);
      await expect(
        store.authenticate(sessionId, authInput(c.now, 'alice', { accessToken: '' })),
      ).rejects.toThrow(TypeError);
      await expect(store.get(sessionId, 7 as unknown as string)).rejects.toThrow(TypeError);
      await expect(store.listForSubject('Not A Tenant', 'alice')).rejects.toThrow(TypeError);
      // The failed attempts left the login ready to authenticate.
      await store.authenticate(sessionId, authInput(c.now));
    });

    it('refuses bad options with CONFIG_INVALID', async () => {
      const bad: ContractStoreOptions[] = [
        { maxPending: 0 },
        { maxPendingPerBinding: 1.5 },
        { maxPending: 2, maxPendingPerBinding: 3 },
        { maxSessionsPerSubject: -1 },
        { sessionTtlMs: Number.NaN },
        { cleanupIntervalMs: -1 },
        { masterKey: { activeKid: 'x', keys: new Map() } },
      ];
      for (const options of bad) expect(await codeOf(harness().create(options))).toBe('CONFIG_INVALID');
    });

    it('refuses calls after close with SERVICE_UNAVAILABLE', async () => {
      const { store } = await open();
      await store.close();
      await store.close();
      expect(await codeOf(store.createPending(pendingInput()))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.get('A'.repeat(43)))).toBe('SERVICE_UNAVAILABLE');
      expect(await codeOf(store.cleanup())).toBe('SERVICE_UNAVAILABLE');
    });
  });
}

// Run the contract against the memory store only when this file is the one under test (the Postgres suite
// imports it for the contract).
if (expect.getState().testPath === fileURLToPath(import.meta.url)) {
  describeSessionStoreContract('memory', () => ({
    create: async (options) => createMemorySessionStore(options),
  }));

  describe('memory session store', () => {
    it('works without a master key (an ephemeral one) and with a given ring', async () => {
      for (const store of [
        createMemorySessionStore({ cleanupIntervalMs: 0 }),
        createMemorySessionStore({ masterKey: keyRing(['k1', 1]) }),
      ]) {
        const { sessionId, input } = await login(store, Date.now());
        expect((await store.tokens(sessionId))?.accessToken).toBe(input.accessToken);
        await store.close();
      }
    });

    it('cleans expired rows in the background', async () => {
      const c = manualClock();
      const store = createMemorySessionStore({ clock: c.clock, cleanupIntervalMs: 20 });
      const { sessionId } = await store.createPending(pendingInput());
      c.now += HOUR;
      expect((await store.get(sessionId))?.status).toBe('expired');
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(await store.get(sessionId)).toBeUndefined();
      await store.close();
    });
  });
}
