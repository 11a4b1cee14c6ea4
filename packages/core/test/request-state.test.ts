import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createMemoryRequestStateStore,
  createRequestStateSealer,
  isAuthSecError,
  type Principal,
} from '../src/index.js';

const principal = (subject: string, issuer = 'https://idp.test', tenantId = 'acme-corp'): Principal =>
  Object.freeze({
    subject,
    email: undefined,
    tenantId,
    clientId: undefined,
    issuer,
    roles: [],
    groups: [],
    scopes: [],
    resources: [],
    permissions: [],
    expiresAt: Math.floor(Date.now() / 1000) + 300,
    claims: {},
  });

const JOHN = principal('john');
const ring = () => ({ activeKid: 'k1', keys: new Map([['k1', randomBytes(32)]]) });

async function reason(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    expect(isAuthSecError(error)).toBe(true);
    expect((error as { code: string }).code).toBe('BAD_REQUEST');
    return (error as { details: { reason: unknown } }).details.reason;
  }
  throw new Error('expected a refusal');
}

describe('sealed requestState', () => {
  it('round-trips a payload bound to the caller, method, target and arguments', async () => {
    const sealer = createRequestStateSealer({ keys: ring() });
    const state = sealer.seal(
      { step: 2, amount: 900 },
      { principal: JOHN, method: 'tools/call', target: 'refund', arguments: { order: 7 } },
    );
    const opened = await sealer.open(state, JOHN, 'tools/call');
    expect(opened.payload).toEqual({ step: 2, amount: 900 });
    expect(sealer.matches(opened, 'refund', { order: 7 })).toBe(true);
    expect(sealer.matches(opened, 'refund', { order: 8 })).toBe(false);
    expect(sealer.matches(opened, 'delete_all', { order: 7 })).toBe(false);
  });

  it('is encrypted: neither the payload nor the arguments can be read from it', () => {
    const sealer = createRequestStateSealer({ keys: ring() });
    const state = sealer.seal(
      { secret: 'hunter2-payload' },
      { principal: JOHN, method: 'tools/call', target: 'refund', arguments: { card: '4111111111111111' } },
    );
    const decoded = Buffer.from(state.slice(4), 'base64url').toString('latin1');
    for (const clear of ['hunter2-payload', '4111111111111111', 'refund', 'john'])
      expect(decoded).not.toContain(clear);
  });

  it('refuses a tampered, foreign, expired or replayed state with its reason, never the payload', async () => {
    let now = 1_000_000;
    const keys = ring();
    const sealer = createRequestStateSealer({ keys, ttlMs: 60_000, clock: () => now });
    const bind = { principal: JOHN, method: 'tools/call', target: 'refund' } as const;
    const state = sealer.seal('p', bind);
    const flipped = `${state.slice(0, -3)}${state.at(-3) === 'A' ? 'B' : 'A'}${state.slice(-2)}`;
    expect(await reason(sealer.open(flipped, JOHN, 'tools/call'))).toBe('sealed');
    expect(await reason(sealer.open('garbage', JOHN, 'tools/call'))).toBe('malformed');
    expect(await reason(sealer.open(state, principal('alice'), 'tools/call'))).toBe('sealed');
    expect(await reason(sealer.open(state, principal('john', 'https://other-idp.test'), 'tools/call'))).toBe(
      'sealed',
    );
    expect(
      await reason(sealer.open(state, principal('john', 'https://idp.test', 'globex'), 'tools/call')),
    ).toBe('sealed');
    expect(await reason(sealer.open(state, JOHN, 'prompts/get'))).toBe('sealed');
    // Another process's key (a replica without the shared ring) cannot open it either.
    expect(await reason(createRequestStateSealer({ keys: ring() }).open(state, JOHN, 'tools/call'))).toBe(
      'sealed',
    );
    expect((await sealer.open(state, JOHN, 'tools/call')).payload).toBe('p');
    expect(await reason(sealer.open(state, JOHN, 'tools/call'))).toBe('replayed');
    const late = sealer.seal('p', bind);
    now += 60_001;
    expect(await reason(sealer.open(late, JOHN, 'tools/call'))).toBe('expired');
  });

  it('opens on another replica with the same key ring and a shared store, once in all', async () => {
    const keys = ring();
    const store = createMemoryRequestStateStore();
    const a = createRequestStateSealer({ keys, store });
    const b = createRequestStateSealer({ keys, store });
    const state = a.seal(1, { principal: JOHN, method: 'tools/call', target: 't' });
    expect((await b.open(state, JOHN, 'tools/call')).payload).toBe(1);
    expect(await reason(a.open(state, JOHN, 'tools/call'))).toBe('replayed');
  });

  it('refuses misconfiguration with TypeErrors', () => {
    expect(() => createRequestStateSealer({ ttlMs: 0 })).toThrow(TypeError);
  });
});
