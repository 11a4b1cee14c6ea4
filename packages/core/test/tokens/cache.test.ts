import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AuthSecOptions } from '../../src/options.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../../src/tokens/index.js';
import {
  claims,
  codeOf,
  type MemoryLogger,
  memoryLogger,
  rsaKey,
  signRaw,
  type TestClock,
  testClock,
} from '../helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const ISS = 'https://issuer.example';
const key = rsaKey('cache-1');

interface Setup {
  readonly verifier: TokenVerifier;
  readonly clock: TestClock;
  readonly logger: MemoryLogger;
  token(overrides?: Record<string, unknown>): string;
}

const verifiers: TokenVerifier[] = [];

function setup(extra: Partial<AuthSecOptions> = {}): Setup {
  const clock = testClock();
  const logger = memoryLogger();
  const verifier = createTokenVerifier(
    resolveTokenConfig(
      { issuers: [{ issuer: ISS, keys: [key.publicJwk] }], audience: AUD, clock, ...extra },
      logger,
    ),
    logger,
  );
  verifiers.push(verifier);
  return {
    verifier,
    clock,
    logger,
    token: (overrides = {}) =>
      signRaw({ alg: 'RS256', kid: key.kid }, claims(clock, { iss: ISS, aud: AUD }, overrides), key),
  };
}

// Counts real signature checks: jose verifies every JWS signature through WebCrypto.
function countSignatureChecks() {
  return vi.spyOn(globalThis.crypto.subtle, 'verify');
}

afterEach(() => {
  vi.restoreAllMocks();
  for (const verifier of verifiers.splice(0)) verifier.close();
});

describe('verified-token cache', () => {
  it('serves a repeated token as the same frozen principal without a second signature check', async () => {
    const s = setup();
    const checks = countSignatureChecks();
    const token = s.token({ roles: ['admin'], nested: { deep: ['x'] } });
    const first = await s.verifier.verify(token);
    const second = await s.verifier.verify(token);
    expect(second).toBe(first);
    expect(checks).toHaveBeenCalledTimes(1);
    expect(s.verifier.cacheSize).toBe(1);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first.roles)).toBe(true);
    expect(Object.isFrozen(first.claims)).toBe(true);
    expect(Object.isFrozen((first.claims.nested as { deep: string[] }).deep)).toBe(true);
    expect(() => {
      (first.roles as string[]).push('superuser');
    }).toThrow(TypeError);
  });

  it('coalesces concurrent verifications of the same token into one', async () => {
    const s = setup();
    const checks = countSignatureChecks();
    const token = s.token();
    const results = await Promise.all(Array.from({ length: 8 }, () => s.verifier.verify(token)));
    expect(new Set(results).size).toBe(1);
    expect(checks).toHaveBeenCalledTimes(1);
  });

  it('never serves a token past its exp', async () => {
    const s = setup();
    const token = s.token({ exp: s.clock.seconds() + 60 });
    await s.verifier.verify(token);
    s.clock.advance(59_000);
    await s.verifier.verify(token);
    expect(s.verifier.cacheSize).toBe(1);

    const checks = countSignatureChecks();
    // At exp: no longer served from the cache. Within the 30 s tolerance it verifies again, uncached.
    s.clock.advance(1_000);
    await s.verifier.verify(token);
    expect(checks).toHaveBeenCalledTimes(1);
    expect(s.verifier.cacheSize).toBe(0);
    // Beyond the tolerance: expired.
    s.clock.advance(30_000);
    expect(await codeOf(s.verifier.verify(token))).toBe('TOKEN_EXPIRED');
    expect(s.verifier.cacheSize).toBe(0);
  });

  it('evicts an entry found expired on a hit', async () => {
    const s = setup({ clockToleranceSeconds: 0 });
    const token = s.token({ exp: s.clock.seconds() + 10 });
    await s.verifier.verify(token);
    expect(s.verifier.cacheSize).toBe(1);
    s.clock.advance(3_600_000);
    expect(await codeOf(s.verifier.verify(token))).toBe('TOKEN_EXPIRED');
    expect(s.verifier.cacheSize).toBe(0);
  });

  it('never caches refusals', async () => {
    const s = setup();
    const checks = countSignatureChecks();
    const wrongTenant = s.token({ tenant_id: 'Not-Valid' });
    expect(await codeOf(s.verifier.verify(wrongTenant))).toBe('TENANT_UNKNOWN');
    expect(await codeOf(s.verifier.verify(wrongTenant))).toBe('TENANT_UNKNOWN');
    expect(checks).toHaveBeenCalledTimes(2);
    const wrongAudience = s.token({ aud: 'https://other.example' });
    expect(await codeOf(s.verifier.verify(wrongAudience))).toBe('TOKEN_AUDIENCE');
    const parts = s.token().split('.');
    const tampered = `${parts[0]}.${parts[1]}.${parts[2]!.slice(0, -4)}AAAA`;
    expect(await codeOf(s.verifier.verify(tampered))).toBe('TOKEN_INVALID');
    expect(s.verifier.cacheSize).toBe(0);
  });

  it('stays within maxEntries', async () => {
    const s = setup({ cache: { maxEntries: 3 } });
    const tokens = Array.from({ length: 10 }, () => s.token());
    for (const token of tokens) {
      await s.verifier.verify(token);
      expect(s.verifier.cacheSize).toBeLessThanOrEqual(3);
    }
    const checks = countSignatureChecks();
    await s.verifier.verify(tokens[9]!);
    expect(checks).toHaveBeenCalledTimes(0);
    await s.verifier.verify(tokens[0]!);
    expect(checks).toHaveBeenCalledTimes(1);
  });

  it('clearCache() forgets every verification', async () => {
    const s = setup();
    const token = s.token();
    const first = await s.verifier.verify(token);
    s.verifier.clearCache();
    expect(s.verifier.cacheSize).toBe(0);
    const second = await s.verifier.verify(token);
    expect(second).not.toBe(first);
    expect(second).toEqual(first);
  });

  it('can be disabled, with a warning', async () => {
    const s = setup({ cache: { enabled: false } });
    expect(s.logger.messages('warn').some((m) => m.startsWith('Verified-token cache disabled'))).toBe(true);
    const checks = countSignatureChecks();
    const token = s.token();
    await s.verifier.verify(token);
    await s.verifier.verify(token);
    expect(checks).toHaveBeenCalledTimes(2);
    expect(s.verifier.cacheSize).toBe(0);
  });

  it('answers a hit in microseconds', async () => {
    const s = setup();
    const token = s.token();
    await s.verifier.verify(token);
    const rounds = 20_000;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) await s.verifier.verify(token);
    const micros = ((performance.now() - started) * 1000) / rounds;
    // Typically 1-2 µs; the bound only catches a hit that re-verifies (about 60 µs or more).
    expect(micros).toBeLessThan(25);
  });
});
