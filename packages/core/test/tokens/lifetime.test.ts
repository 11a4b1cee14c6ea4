import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthSecOptions } from '../../src/options.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../../src/tokens/index.js';
import { sendJson, startTestServer, type TestServer } from '../helpers/tokens-server.js';
import {
  b64url,
  claims,
  codeOf,
  memoryLogger,
  rsaKey,
  signBytes,
  signRaw,
  syncCodeOf,
  type TestClock,
  testClock,
} from '../helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const ISS = 'https://issuer.example';
const DAY = 86_400;
const YEAR = 365 * DAY;
const key = rsaKey('life-1');

// Never advanced: every case is measured from one fixed instant.
const clock: TestClock = testClock();
const verifiers: TokenVerifier[] = [];

function verifierWith(extra: Partial<AuthSecOptions> = {}): TokenVerifier {
  const logger = memoryLogger();
  const v = createTokenVerifier(
    resolveTokenConfig(
      { issuers: [{ issuer: ISS, keys: [key.publicJwk] }], audience: AUD, clock, ...extra },
      logger,
    ),
    logger,
  );
  verifiers.push(v);
  return v;
}

function token(overrides: Record<string, unknown>): string {
  return signRaw({ alg: 'RS256', kid: key.kid }, claims(clock, { iss: ISS, aud: AUD }, overrides), key);
}

// A payload written verbatim: JSON numbers such as 1e400 (Infinity once parsed) cannot come from JSON.stringify.
function tokenWithRawPayload(payload: string): string {
  const input = `${b64url({ alg: 'RS256', kid: key.kid })}.${b64url(payload)}`;
  return `${input}.${signBytes(input, 'RS256', key).toString('base64url')}`;
}

afterAll(() => {
  for (const v of verifiers) v.close();
});

describe('maximum token lifetime (default 24 h)', () => {
  it('refuses an exp ten years ahead', async () => {
    const now = clock.seconds();
    expect(await codeOf(verifierWith().verify(token({ exp: now + 10 * YEAR })))).toBe('TOKEN_INVALID');
  });

  it('refuses an exp of 1e20 and one of 1e400 (Infinity once parsed), with or without iat', async () => {
    const v = verifierWith();
    expect(await codeOf(v.verify(token({ exp: 1e20 })))).toBe('TOKEN_INVALID');
    expect(await codeOf(v.verify(token({ exp: 1e20, iat: undefined })))).toBe('TOKEN_INVALID');
    const raw = `{"iss":"${ISS}","aud":"${AUD}","sub":"u","tenant_id":"acme-corp","exp":1e400}`;
    expect(await codeOf(v.verify(tokenWithRawPayload(raw)))).toBe('TOKEN_INVALID');
  });

  it('measures exp - iat: a token issued two days ago that is valid for one more hour is refused', async () => {
    const now = clock.seconds();
    expect(await codeOf(verifierWith().verify(token({ iat: now - 2 * DAY, exp: now + 3600 })))).toBe(
      'TOKEN_INVALID',
    );
  });

  it('measures exp - now when there is no iat', async () => {
    const now = clock.seconds();
    const v = verifierWith();
    expect(await codeOf(v.verify(token({ iat: undefined, exp: now + DAY + 3600 })))).toBe('TOKEN_INVALID');
    await expect(v.verify(token({ iat: undefined, exp: now + DAY - 60 }))).resolves.toMatchObject({
      subject: 'user-1',
    });
  });

  it('accepts a lifetime of exactly the maximum, and ordinary tokens', async () => {
    const now = clock.seconds();
    const v = verifierWith();
    await expect(v.verify(token({ iat: now, exp: now + DAY }))).resolves.toMatchObject({
      expiresAt: now + DAY,
    });
    await expect(v.verify(token({}))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('is configurable: maxTokenLifetimeSeconds', async () => {
    const now = clock.seconds();
    const short = verifierWith({ maxTokenLifetimeSeconds: 900 });
    expect(await codeOf(short.verify(token({ exp: now + 3600 })))).toBe('TOKEN_INVALID');
    await expect(short.verify(token({ exp: now + 900 }))).resolves.toMatchObject({ subject: 'user-1' });
    const long = verifierWith({ maxTokenLifetimeSeconds: 30 * DAY });
    await expect(long.verify(token({ exp: now + 7 * DAY }))).resolves.toMatchObject({ subject: 'user-1' });
    expect(await codeOf(long.verify(token({ exp: now + 31 * DAY })))).toBe('TOKEN_INVALID');
  });

  it('refuses a bad maxTokenLifetimeSeconds at start, and warns about one over a week', () => {
    for (const bad of [0, -1, 59, 1.5, Number.NaN, '3600', YEAR + 1]) {
      expect(
        syncCodeOf(() =>
          resolveTokenConfig(
            {
              issuers: [{ issuer: ISS, keys: [key.publicJwk] }],
              audience: AUD,
              maxTokenLifetimeSeconds: bad as number,
            },
            memoryLogger(),
          ),
        ),
      ).toBe('CONFIG_INVALID');
    }
    const logger = memoryLogger();
    const config = resolveTokenConfig(
      { issuers: [{ issuer: ISS, keys: [key.publicJwk] }], audience: AUD, maxTokenLifetimeSeconds: 30 * DAY },
      logger,
    );
    expect(config.maxTokenLifetimeSeconds).toBe(30 * DAY);
    expect(
      logger.lines.some((l) => l.level === 'warn' && l.fields?.option === 'maxTokenLifetimeSeconds'),
    ).toBe(true);
    expect(
      resolveTokenConfig({ issuers: [{ issuer: ISS, keys: [key.publicJwk] }], audience: AUD }, memoryLogger())
        .maxTokenLifetimeSeconds,
    ).toBe(DAY);
  });
});

describe('iat skew', () => {
  it('refuses an iat a day in the future', async () => {
    const now = clock.seconds();
    expect(await codeOf(verifierWith().verify(token({ iat: now + DAY, exp: now + DAY + 600 })))).toBe(
      'TOKEN_INVALID',
    );
  });

  it('refuses an iat just beyond the clock tolerance and accepts one within it', async () => {
    const now = clock.seconds();
    const v = verifierWith({ clockToleranceSeconds: 30 });
    expect(await codeOf(v.verify(token({ iat: now + 31, exp: now + 600 })))).toBe('TOKEN_INVALID');
    await expect(v.verify(token({ iat: now + 30, exp: now + 600 }))).resolves.toMatchObject({
      subject: 'user-1',
    });
  });

  it('refuses an iat that is not a number', async () => {
    expect(await codeOf(verifierWith().verify(token({ iat: 'yesterday' })))).toBe('TOKEN_INVALID');
  });
});

describe('introspection results', () => {
  let server: TestServer;
  let body: Record<string, unknown>;

  beforeAll(async () => {
    server = await startTestServer();
    server.route('/introspect', (_request, response) => sendJson(response, 200, body));
  });
  afterAll(async () => {
    await server.close();
  });

  const opaqueVerifier = () =>
    verifierWith({
      issuers: [
        {
          issuer: ISS,
          keys: [key.publicJwk],
          introspection: {
            endpoint: `${server.origin}/introspect`,
            clientId: 'rs',
            clientSecret: 'rs-secret',
          },
        },
      ],
    });
  const active = (extra: Record<string, unknown>) => ({
    active: true,
    iss: ISS,
    aud: AUD,
    sub: 'user-9',
    tenant_id: 'acme-corp',
    ...extra,
  });

  it('applies the same maximum lifetime and iat skew to an active introspection answer', async () => {
    const now = clock.seconds();
    const v = opaqueVerifier();
    body = active({ exp: now + 10 * YEAR });
    expect(await codeOf(v.verify('opaque-1'))).toBe('TOKEN_INVALID');
    body = active({ exp: 1e20, iat: now });
    expect(await codeOf(v.verify('opaque-2'))).toBe('TOKEN_INVALID');
    body = active({ exp: now + 600, iat: now - 2 * DAY });
    expect(await codeOf(v.verify('opaque-3'))).toBe('TOKEN_INVALID');
    body = active({ exp: now + DAY + 600, iat: now + DAY });
    expect(await codeOf(v.verify('opaque-4'))).toBe('TOKEN_INVALID');
    body = active({ exp: now + 600, iat: 'now' });
    expect(await codeOf(v.verify('opaque-5'))).toBe('TOKEN_INVALID');
    body = active({ exp: now + 600, iat: now });
    await expect(v.verify('opaque-6')).resolves.toMatchObject({ subject: 'user-9' });
  });
});
