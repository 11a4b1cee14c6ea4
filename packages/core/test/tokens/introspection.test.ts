import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuthSecOptions } from '../../src/options.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../../src/tokens/index.js';
import {
  type RecordedRequest,
  sendJson,
  startTestServer,
  type TestServer,
  unusedPort,
} from '../helpers/tokens-server.js';
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
const ISS = 'https://idp.example';
const CLIENT_ID = 'rs client';
const CLIENT_SECRET = 's3cr:t&x';

let server: TestServer;
let answer: (request: RecordedRequest) => { status: number; body: unknown };
let clock: TestClock;
let logger: MemoryLogger;
let verifier: TokenVerifier;
const verifiers: TokenVerifier[] = [];
const jwtKey = rsaKey('jwt-1');
let tokenCounter = 0;

function opaque(): string {
  tokenCounter += 1;
  return `opaque-${tokenCounter}-AbC_~+/x==`;
}

function active(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const body: Record<string, unknown> = {
    active: true,
    iss: ISS,
    aud: AUD,
    sub: 'user-9',
    client_id: 'cli-app',
    scope: 'read write',
    tenant_id: 'acme-corp',
    exp: clock.seconds() + 600,
    ...overrides,
  };
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  return body;
}

function make(endpoint: string, extra: Partial<AuthSecOptions> = {}): TokenVerifier {
  const v = createTokenVerifier(
    resolveTokenConfig(
      {
        issuers: [
          {
            issuer: ISS,
            keys: [jwtKey.publicJwk],
            introspection: { endpoint, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
          },
        ],
        audience: AUD,
        clock,
        ...extra,
      },
      logger,
    ),
    logger,
  );
  verifiers.push(v);
  return v;
}

beforeAll(async () => {
  server = await startTestServer();
  server.route('/introspect', (request, response) => {
    const { status, body } = answer(request);
    if (typeof body === 'string') {
      response.writeHead(status, { 'content-type': 'text/plain' });
      response.end(body);
    } else sendJson(response, status, body);
  });
});

beforeEach(() => {
  clock = testClock();
  logger = memoryLogger();
  answer = () => ({ status: 200, body: active() });
  verifier = make(`${server.origin}/introspect`);
});

afterAll(async () => {
  for (const v of verifiers) v.close();
  await server.close();
});

describe('RFC 7662 introspection of opaque tokens', () => {
  it('accepts an active token and sends a correct, client-authenticated request', async () => {
    const token = opaque();
    const before = server.hits('/introspect');
    const principal = await verifier.verify(token);
    expect(principal).toMatchObject({
      subject: 'user-9',
      clientId: 'cli-app',
      tenantId: 'acme-corp',
      issuer: ISS,
      scopes: ['read', 'write'],
      expiresAt: clock.seconds() + 600,
    });
    expect(Object.isFrozen(principal)).toBe(true);
    expect(server.hits('/introspect')).toBe(before + 1);

    const request = server.requests.at(-1)!;
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = new URLSearchParams(request.body);
    expect(form.get('token')).toBe(token);
    expect(form.get('token_type_hint')).toBe('access_token');
    const authorization = String(request.headers.authorization);
    expect(authorization.startsWith('Basic ')).toBe(true);
    // RFC 6749 §2.3.1: each part form-urlencoded, then joined with ':' and base64-encoded.
    expect(Buffer.from(authorization.slice(6), 'base64').toString()).toBe('rs+client:s3cr%3At%26x');
  });

  it('caches an active answer briefly (never past 60 s or exp), and coalesces concurrent checks', async () => {
    const token = opaque();
    const before = server.hits('/introspect');
    const results = await Promise.all([
      verifier.verify(token),
      verifier.verify(token),
      verifier.verify(token),
    ]);
    expect(new Set(results).size).toBe(1);
    expect(server.hits('/introspect')).toBe(before + 1);
    await verifier.verify(token);
    expect(server.hits('/introspect')).toBe(before + 1);
    clock.advance(60_000);
    await verifier.verify(token);
    expect(server.hits('/introspect')).toBe(before + 1);
    clock.advance(1);
    await verifier.verify(token);
    expect(server.hits('/introspect')).toBe(before + 2);
  });

  it('refuses an inactive token and does not remember the refusal', async () => {
    const token = opaque();
    answer = () => ({ status: 200, body: { active: false } });
    expect(await codeOf(verifier.verify(token))).toBe('TOKEN_INVALID');
    answer = () => ({ status: 200, body: active() });
    expect((await verifier.verify(token)).subject).toBe('user-9');
  });

  it.each([
    ['active missing', { active: undefined }, 'TOKEN_INVALID'],
    ['active as the string "true"', { active: 'true' }, 'TOKEN_INVALID'],
    ['wrong aud', { aud: 'https://other.example' }, 'TOKEN_AUDIENCE'],
    ['aud array without ours', { aud: ['https://a.example'] }, 'TOKEN_AUDIENCE'],
    ['missing aud', { aud: undefined }, 'TOKEN_AUDIENCE'],
    ['another issuer', { iss: 'https://evil.example' }, 'TOKEN_ISSUER'],
    ['expired', { exp: 1 }, 'TOKEN_EXPIRED'],
    ['missing exp', { exp: undefined }, 'TOKEN_INVALID'],
    ['exp as a string', { exp: '1900000000' }, 'TOKEN_INVALID'],
    ['nbf in the future', { nbf: 4_000_000_000 }, 'TOKEN_EXPIRED'],
    ['scope a number', { scope: 5 }, 'TOKEN_INVALID'],
    ['hostile tenant', { tenant_id: '../etc' }, 'TENANT_UNKNOWN'],
  ] as const)('refuses an active answer with %s', async (_name, overrides, code) => {
    answer = () => ({ status: 200, body: active(overrides) });
    expect(await codeOf(verifier.verify(opaque()))).toBe(code);
  });

  it('accepts an answer without iss (optional in RFC 7662) and maps a machine caller', async () => {
    answer = () => ({
      status: 200,
      body: active({ iss: undefined, sub: undefined, client_id: 'batch-job', scope: 'read' }),
    });
    const principal = await verifier.verify(opaque());
    expect(principal.subject).toBe('batch-job');
    expect(principal.email).toBeUndefined();
  });

  it.each([
    ['a 500', 500, { error: 'boom' }],
    ['a 503', 503, { error: 'busy' }],
    ['a 401 (our credentials refused)', 401, { error: 'invalid_client' }],
    ['a body that is not JSON', 200, 'not json'],
    ['a JSON array', 200, [1, 2]],
  ] as const)('fails closed with SERVICE_UNAVAILABLE on %s', async (_name, status, body) => {
    answer = () => ({ status, body });
    expect(await codeOf(verifier.verify(opaque()))).toBe('SERVICE_UNAVAILABLE');
  });

  it('fails closed with SERVICE_UNAVAILABLE when the endpoint is down', async () => {
    const down = make(`http://127.0.0.1:${await unusedPort()}/introspect`);
    expect(await codeOf(down.verify(opaque()))).toBe('SERVICE_UNAVAILABLE');
  });

  it('fails closed on a slow endpoint', async () => {
    server.route('/slow-introspect', (_request, response) => {
      const timer = setTimeout(() => sendJson(response, 200, active()), 3000);
      response.on('close', () => clearTimeout(timer));
    });
    const slow = make(`${server.origin}/slow-introspect`, { jwks: { timeoutMs: 150 } });
    expect(await codeOf(slow.verify(opaque()))).toBe('SERVICE_UNAVAILABLE');
  });

  it('never sends malformed tokens or JWTs to the endpoint', async () => {
    const before = server.hits('/introspect');
    expect(await codeOf(verifier.verify('has space'))).toBe('TOKEN_INVALID');
    expect(await codeOf(verifier.verify('quote"d'))).toBe('TOKEN_INVALID');
    const jwt = signRaw({ alg: 'RS256', kid: jwtKey.kid }, claims(clock, { iss: ISS, aud: AUD }), jwtKey);
    expect((await verifier.verify(jwt)).subject).toBe('user-1');
    expect(server.hits('/introspect')).toBe(before);
  });

  it('refuses opaque tokens with TOKEN_INVALID when no issuer has introspection', async () => {
    const plain = createTokenVerifier(
      resolveTokenConfig(
        { issuers: [{ issuer: ISS, keys: [jwtKey.publicJwk] }], audience: AUD, clock },
        logger,
      ),
      logger,
    );
    verifiers.push(plain);
    const before = server.hits();
    expect(await codeOf(plain.verify(opaque()))).toBe('TOKEN_INVALID');
    expect(server.hits()).toBe(before);
  });
});
