import { afterAll, describe, expect, it } from 'vitest';
import { assertDisplaySafe, hasUnsafeDisplayChars } from '../src/identifiers.js';
import { checkInput, checkServiceName } from '../src/secrets/common.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../src/tokens/index.js';
import {
  claims,
  codeOf,
  memoryLogger,
  rsaKey,
  signRaw,
  syncCodeOf,
  testClock,
} from './helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const ISS = 'https://issuer.example';
const key = rsaKey('ids-1');
const clock = testClock();

// Every character the brief names, plus the control characters and separators that were refused already.
const BIDI = ['\u061c', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e'];
const ISOLATES = ['\u2066', '\u2067', '\u2068', '\u2069'];
const ZERO_WIDTH = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff'];
const CONTROLS = ['\u0000', '\u001b', '\u007f', '\u0085', '\u009b', '\u2028', '\u2029'];
const UNSAFE = [...BIDI, ...ISOLATES, ...ZERO_WIDTH, ...CONTROLS];

const verifiers: TokenVerifier[] = [];
function verifier(): TokenVerifier {
  const logger = memoryLogger();
  const v = createTokenVerifier(
    resolveTokenConfig({ issuers: [{ issuer: ISS, keys: [key.publicJwk] }], audience: AUD, clock }, logger),
    logger,
  );
  verifiers.push(v);
  return v;
}
function token(overrides: Record<string, unknown>): string {
  return signRaw({ alg: 'RS256', kid: key.kid }, claims(clock, { iss: ISS, aud: AUD }, overrides), key);
}
afterAll(() => {
  for (const v of verifiers) v.close();
});

describe('hasUnsafeDisplayChars', () => {
  it('flags every bidirectional control, zero-width and control character, anywhere in the text', () => {
    for (const c of UNSAFE) {
      expect(hasUnsafeDisplayChars(c)).toBe(true);
      expect(hasUnsafeDisplayChars(`admin${c}`)).toBe(true);
      expect(hasUnsafeDisplayChars(`${c}admin`)).toBe(true);
    }
  });

  it('leaves ordinary identifiers in any script alone', () => {
    for (const ok of [
      'user-1',
      'José Müller',
      '山田太郎',
      'مرحبا',
      'שלום',
      'Grüße 🙂',
      'a:b',
      'auth0|abc123',
      '',
    ]) {
      expect(hasUnsafeDisplayChars(ok)).toBe(false);
    }
  });

  it('assertDisplaySafe throws the code it is given, without repeating the value', () => {
    expect(assertDisplaySafe('fine', 'Name')).toBe('fine');
    expect(syncCodeOf(() => assertDisplaySafe('ev\u202eil', 'Name'))).toBe('BAD_REQUEST');
    expect(syncCodeOf(() => assertDisplaySafe('ev\u202eil', 'Subject', 'TOKEN_INVALID'))).toBe(
      'TOKEN_INVALID',
    );
    try {
      assertDisplaySafe('ev\u202eil', 'Subject');
    } catch (error) {
      expect((error as Error).message).not.toContain('ev');
    }
  });
});

describe('token identifiers', () => {
  it('refuses a sub with U+202E, U+2066 or U+200B (TOKEN_INVALID)', async () => {
    const v = verifier();
    for (const c of ['\u202e', '\u2066', '\u200b']) {
      expect(await codeOf(v.verify(token({ sub: `admin${c}user` })))).toBe('TOKEN_INVALID');
    }
  });

  it('refuses every character of the set in a sub', async () => {
    const v = verifier();
    for (const c of UNSAFE) expect(await codeOf(v.verify(token({ sub: `u${c}1` })))).toBe('TOKEN_INVALID');
  });

  it('refuses them in the client id, whether or not it stands in for the subject', async () => {
    const v = verifier();
    expect(await codeOf(v.verify(token({ sub: undefined, client_id: 'svc\u200b' })))).toBe('TOKEN_INVALID');
    expect(await codeOf(v.verify(token({ client_id: 'svc\u202e' })))).toBe('TOKEN_INVALID');
    expect(await codeOf(v.verify(token({ azp: 'svc\u2066' })))).toBe('TOKEN_INVALID');
  });

  it('refuses them in the tenant claim (TENANT_UNKNOWN)', async () => {
    expect(await codeOf(verifier().verify(token({ tenant_id: 'acme\u200b-corp' })))).toBe('TENANT_UNKNOWN');
  });

  it('still accepts subjects and client ids in any script', async () => {
    await expect(
      verifier().verify(token({ sub: 'José 山田 مرحبا', client_id: 'app-ü' })),
    ).resolves.toMatchObject({ subject: 'José 山田 مرحبا', clientId: 'app-ü' });
  });

  it('refuses an issuer holding one in the configuration (CONFIG_INVALID)', () => {
    for (const issuer of ['idp\u200b', 'idp\u202eexample', 'https://idp.example/\u2066']) {
      expect(
        syncCodeOf(() =>
          resolveTokenConfig({ issuers: [{ issuer, keys: [key.publicJwk] }], audience: AUD }, memoryLogger()),
        ),
      ).toBe('CONFIG_INVALID');
    }
  });
});

describe('service names', () => {
  const input = (name: string) => ({ name, credentials: { token: 'x' } });

  it('refuses a new service whose name holds U+202E, U+2066 or U+200B (BAD_REQUEST)', () => {
    for (const c of ['\u202e', '\u2066', '\u200b', ...UNSAFE]) {
      expect(syncCodeOf(() => checkInput(input(`pay${c}roll`)))).toBe('BAD_REQUEST');
    }
    expect(checkInput(input('Payroll API (EU)')).name).toBe('Payroll API (EU)');
  });

  it('still looks up (reads, rotates, deletes) a service stored before the rule, so it can be removed', () => {
    expect(checkServiceName('pay\u202eroll')).toBe('pay\u202eroll');
    expect(syncCodeOf(() => checkServiceName('pay\u0007roll'))).toBe('BAD_REQUEST');
  });
});
