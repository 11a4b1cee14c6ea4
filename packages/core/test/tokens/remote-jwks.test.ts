import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuthSecOptions } from '../../src/options.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../../src/tokens/index.js';
import {
  type Route,
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
  type TestKey,
  testClock,
} from '../helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const COOLDOWN = 30_000;
const MAX_AGE = 600_000;

const keyA = rsaKey('key-a');
const keyB = rsaKey('key-b');
const keyC = rsaKey('key-c');

let server: TestServer;
const verifiers: TokenVerifier[] = [];

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  for (const verifier of verifiers) verifier.close();
  await server.close();
});

interface Setup {
  readonly verifier: TokenVerifier;
  readonly clock: TestClock;
  readonly logger: MemoryLogger;
  readonly issuer: string;
  token(key: TestKey, overrides?: Record<string, unknown>): string;
}

function setup(issuer: string, extra: Partial<AuthSecOptions> & { jwksUrl?: string } = {}): Setup {
  const clock = testClock();
  const logger = memoryLogger();
  const { jwksUrl, ...options } = extra;
  const verifier = createTokenVerifier(
    resolveTokenConfig(
      {
        issuers: [jwksUrl === undefined ? { issuer } : { issuer, jwksUrl }],
        audience: AUD,
        clock,
        jwks: { cooldownMs: COOLDOWN, maxAgeMs: MAX_AGE, ...options.jwks },
        ...options,
      },
      logger,
    ),
    logger,
  );
  verifiers.push(verifier);
  return {
    verifier,
    clock,
    logger,
    issuer,
    token: (key, overrides = {}) =>
      signRaw(
        { alg: 'RS256', kid: key.kid, typ: 'JWT' },
        claims(clock, { iss: issuer, aud: AUD }, overrides),
        key,
      ),
  };
}

// The reason logged for the last failed fetch, so that a refusal is known to come from the limit under test.
function lastError(logger: MemoryLogger): string {
  return String(logger.lines.at(-1)?.fields?.error);
}

function keySetRoute(keys: () => readonly JWK[]): Route {
  return (_req, res) => sendJson(res, 200, { keys: keys() });
}

describe('remote key set', () => {
  it('reports readiness: one fetch when no keys are at hand, at most once per cooldown; cached keys stay ready', async () => {
    let up = false;
    server.route('/ready/jwks', (req, res) =>
      up ? keySetRoute(() => [keyA.publicJwk])(req, res) : sendJson(res, 503, { error: 'down' }),
    );
    const issuer = `${server.origin}/ready`;
    const s = setup(issuer, { jwksUrl: `${server.origin}/ready/jwks` });
    expect(await s.verifier.checkKeys()).toEqual({ [issuer]: false });
    expect(server.hits('/ready/jwks')).toBe(1);
    // Within the cooldown a probe does not fetch again.
    expect(await s.verifier.checkKeys()).toEqual({ [issuer]: false });
    expect(server.hits('/ready/jwks')).toBe(1);
    up = true;
    s.clock.advance(COOLDOWN);
    expect(await s.verifier.checkKeys()).toEqual({ [issuer]: true });
    expect(server.hits('/ready/jwks')).toBe(2);
    // Once keys are at hand they keep serving (and the probe stays ready) while the endpoint is down.
    up = false;
    s.clock.advance(MAX_AGE);
    expect(await s.verifier.checkKeys()).toEqual({ [issuer]: true });
    expect(server.hits('/ready/jwks')).toBe(2);
    expect((await s.verifier.verify(s.token(keyA))).issuer).toBe(issuer);
  });

  it('fetches the key set once and verifies every token from it', async () => {
    server.route(
      '/basic/jwks',
      keySetRoute(() => [keyA.publicJwk]),
    );
    const s = setup(server.origin, { jwksUrl: `${server.origin}/basic/jwks` });
    await s.verifier.verify(s.token(keyA));
    await s.verifier.verify(s.token(keyA));
    expect(server.hits('/basic/jwks')).toBe(1);
    expect(server.requests.find((r) => r.path === '/basic/jwks')?.method).toBe('GET');
  });

  it('follows a rotation: a new kid is fetched, a removed key stops verifying after the refresh', async () => {
    let keys: JWK[] = [keyA.publicJwk];
    server.route(
      '/rotation/jwks',
      keySetRoute(() => keys),
    );
    const s = setup(server.origin, { jwksUrl: `${server.origin}/rotation/jwks` });
    await s.verifier.verify(s.token(keyA));
    expect(server.hits('/rotation/jwks')).toBe(1);

    keys = [keyA.publicJwk, keyB.publicJwk];
    // Within the cooldown an unknown kid does not cause a request.
    expect(await codeOf(s.verifier.verify(s.token(keyB)))).toBe('TOKEN_INVALID');
    expect(server.hits('/rotation/jwks')).toBe(1);
    s.clock.advance(COOLDOWN);
    await s.verifier.verify(s.token(keyB));
    expect(server.hits('/rotation/jwks')).toBe(2);

    keys = [keyB.publicJwk];
    s.clock.advance(MAX_AGE);
    // Past maxAge: served from the cached keys while the refresh runs in the background.
    await s.verifier.verify(s.token(keyA));
    await vi.waitFor(async () => {
      expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('TOKEN_INVALID');
    });
    expect(server.hits('/rotation/jwks')).toBe(3);
    await s.verifier.verify(s.token(keyB));
  });

  it('coalesces concurrent fetches and refetches at most once per cooldown for unknown kids', async () => {
    server.route('/cooldown/jwks', async (_req, res) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      sendJson(res, 200, { keys: [keyA.publicJwk] });
    });
    const s = setup(server.origin, { jwksUrl: `${server.origin}/cooldown/jwks` });
    const first = await Promise.all(Array.from({ length: 10 }, () => s.verifier.verify(s.token(keyA))));
    expect(first).toHaveLength(10);
    expect(server.hits('/cooldown/jwks')).toBe(1);

    const strangers = Array.from({ length: 20 }, (_, i) => ({ ...keyC, kid: `unknown-${i}` }));
    const unknownTokens = () => strangers.map((key) => s.verifier.verify(s.token(key)));

    // Still within the cooldown of the first fetch: nothing is fetched.
    const codes = await Promise.all(unknownTokens().map(codeOf));
    expect(new Set(codes)).toEqual(new Set(['TOKEN_INVALID']));
    expect(server.hits('/cooldown/jwks')).toBe(1);

    s.clock.advance(COOLDOWN);
    await Promise.all(unknownTokens().map(codeOf));
    expect(server.hits('/cooldown/jwks')).toBe(2);

    s.clock.advance(COOLDOWN - 1);
    await Promise.all(unknownTokens().map(codeOf));
    expect(server.hits('/cooldown/jwks')).toBe(2);

    s.clock.advance(1);
    await Promise.all(unknownTokens().map(codeOf));
    expect(server.hits('/cooldown/jwks')).toBe(3);
  });

  it('keeps verifying with cached keys when the server goes away, and refuses unknown kids', async () => {
    const own = await startTestServer();
    try {
      own.route(
        '/jwks',
        keySetRoute(() => [keyA.publicJwk]),
      );
      const s = setup(own.origin, { jwksUrl: `${own.origin}/jwks` });
      await s.verifier.verify(s.token(keyA));
      await own.close();

      await s.verifier.verify(s.token(keyA));
      s.clock.advance(COOLDOWN);
      expect(await codeOf(s.verifier.verify(s.token(keyC)))).toBe('TOKEN_INVALID');
      expect(s.logger.messages('warn')).toContain(
        'Could not refresh the key set of an issuer; keeping the cached keys',
      );

      s.clock.advance(MAX_AGE);
      await s.verifier.verify(s.token(keyA));
      await vi.waitFor(() => {
        expect(
          s.logger.messages('warn').filter((m) => m.startsWith('Could not refresh the key set')).length,
        ).toBeGreaterThanOrEqual(2);
      });
      await s.verifier.verify(s.token(keyA));
    } finally {
      await own.close();
    }
  });

  it('fails closed with SERVICE_UNAVAILABLE when no key set was ever fetched and the server is unreachable', async () => {
    const port = await unusedPort();
    const s = setup(`http://127.0.0.1:${port}`, { jwksUrl: `http://127.0.0.1:${port}/jwks` });
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(s.logger.messages('error')).toContain('Could not fetch the key set of an issuer');
  });

  it('refuses an oversized key set (declared length)', async () => {
    const big = { keys: [keyA.publicJwk], padding: 'x'.repeat(70_000) };
    server.route('/big/jwks', (_req, res) => sendJson(res, 200, big));
    const s = setup(server.origin, { jwksUrl: `${server.origin}/big/jwks` });
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(lastError(s.logger)).toContain('exceeds 65536 bytes');
  });

  it('stops reading an endless key-set stream past maxBytes', async () => {
    let closedByClient = false;
    server.route('/endless/jwks', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[],"padding":"');
      const chunk = 'x'.repeat(4096);
      const timer = setInterval(() => {
        if (res.destroyed || res.writableEnded) return;
        res.write(chunk);
      }, 1);
      res.on('close', () => {
        closedByClient = true;
        clearInterval(timer);
      });
    });
    const s = setup(server.origin, { jwksUrl: `${server.origin}/endless/jwks`, jwks: { maxBytes: 16_384 } });
    const started = performance.now();
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(performance.now() - started).toBeLessThan(3000);
    expect(lastError(s.logger)).toContain('exceeds 16384 bytes');
    await vi.waitFor(() => expect(closedByClient).toBe(true));
  });

  it('times out on a slow server with SERVICE_UNAVAILABLE', async () => {
    server.route('/slow/jwks', (_req, res) => {
      const timer = setTimeout(() => sendJson(res, 200, { keys: [keyA.publicJwk] }), 3000);
      res.on('close', () => clearTimeout(timer));
    });
    const s = setup(server.origin, { jwksUrl: `${server.origin}/slow/jwks`, jwks: { timeoutMs: 200 } });
    const started = performance.now();
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(lastError(s.logger)).toContain('within 200 ms');
  });

  it('refuses bodies that are not a key set, and does not follow redirects', async () => {
    server.route('/html/jwks', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html></html>');
    });
    server.route('/nokeys/jwks', (_req, res) => sendJson(res, 200, { keys: 'none' }));
    server.route('/redirect/jwks', (_req, res) => {
      res.writeHead(302, { location: `${server.origin}/redirect/target` });
      res.end();
    });
    server.route(
      '/redirect/target',
      keySetRoute(() => [keyA.publicJwk]),
    );
    server.route('/error/jwks', (_req, res) => sendJson(res, 500, { error: 'boom' }));
    for (const path of ['/html/jwks', '/nokeys/jwks', '/redirect/jwks', '/error/jwks']) {
      const s = setup(server.origin, { jwksUrl: `${server.origin}${path}` });
      expect(await codeOf(s.verifier.verify(s.token(keyA))), path).toBe('SERVICE_UNAVAILABLE');
    }
    expect(server.hits('/redirect/target')).toBe(0);
  });

  it('ignores private keys published in a key set', async () => {
    const leaked = { ...(keyC.privateKey.export({ format: 'jwk' }) as JWK), kid: keyC.kid };
    server.route(
      '/leaky/jwks',
      keySetRoute(() => [keyA.publicJwk, leaked]),
    );
    const s = setup(server.origin, { jwksUrl: `${server.origin}/leaky/jwks` });
    await s.verifier.verify(s.token(keyA));
    expect(await codeOf(s.verifier.verify(s.token(keyC)))).toBe('TOKEN_INVALID');
    expect(s.logger.messages('warn')).toContain('Ignoring a private or symmetric key published in a key set');
  });

  it('tries every key when the token has no kid and several keys match', async () => {
    const noKid = (key: TestKey): JWK => {
      const { kid: _kid, ...rest } = key.publicJwk;
      return rest;
    };
    server.route(
      '/nokid/jwks',
      keySetRoute(() => [noKid(keyA), noKid(keyB)]),
    );
    const s = setup(server.origin, { jwksUrl: `${server.origin}/nokid/jwks` });
    const token = signRaw({ alg: 'RS256' }, claims(s.clock, { iss: s.issuer, aud: AUD }), keyB);
    expect((await s.verifier.verify(token)).subject).toBe('user-1');
    const forged = signRaw({ alg: 'RS256' }, claims(s.clock, { iss: s.issuer, aud: AUD }), keyC);
    expect(await codeOf(s.verifier.verify(forged))).toBe('TOKEN_INVALID');
  });

  it('uses the injected fetch, with no redirects and an abort signal', async () => {
    const calls: { url: string; init: RequestInit | undefined }[] = [];
    const fakeFetch: typeof fetch = async (input, init) => {
      calls.push({ url: String(input), init });
      return new Response(JSON.stringify({ keys: [keyB.publicJwk] }), { status: 200 });
    };
    const s = setup('https://idp.example', { jwksUrl: 'https://idp.example/keys', fetch: fakeFetch });
    await s.verifier.verify(s.token(keyB));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe('https://idp.example/keys');
    expect(calls[0]!.init?.redirect).toBe('error');
    expect(calls[0]!.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it('close() aborts an in-flight fetch and refuses later calls', async () => {
    server.route('/hang/jwks', (_req, res) => {
      const timer = setTimeout(() => sendJson(res, 200, { keys: [keyA.publicJwk] }), 5000);
      res.on('close', () => clearTimeout(timer));
    });
    const s = setup(server.origin, { jwksUrl: `${server.origin}/hang/jwks` });
    const pending = codeOf(s.verifier.verify(s.token(keyA)));
    await vi.waitFor(() => expect(server.hits('/hang/jwks')).toBe(1));
    const started = performance.now();
    s.verifier.close();
    expect(await pending).toBe('SERVICE_UNAVAILABLE');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
  });
});

describe('discovery', () => {
  it('finds jwks_uri through /.well-known/openid-configuration', async () => {
    const issuer = `${server.origin}/tenant-a`;
    server.route('/tenant-a/.well-known/openid-configuration', (_req, res) =>
      sendJson(res, 200, { issuer, jwks_uri: `${issuer}/keys` }),
    );
    server.route(
      '/tenant-a/keys',
      keySetRoute(() => [keyA.publicJwk]),
    );
    const s = setup(issuer);
    await s.verifier.verify(s.token(keyA));
    await s.verifier.verify(s.token(keyA));
    expect(server.hits('/tenant-a/.well-known/openid-configuration')).toBe(1);
    expect(server.hits('/tenant-a/keys')).toBe(1);
  });

  it('finds the root issuer metadata on the same server', async () => {
    const issuer = server.origin;
    server.route('/.well-known/openid-configuration', (_req, res) =>
      sendJson(res, 200, { issuer, jwks_uri: `${issuer}/root/keys` }),
    );
    server.route(
      '/root/keys',
      keySetRoute(() => [keyB.publicJwk]),
    );
    const s = setup(issuer);
    expect((await s.verifier.verify(s.token(keyB))).issuer).toBe(issuer);
  });

  it('falls back to RFC 8414 /.well-known/oauth-authorization-server (path inserted)', async () => {
    const issuer = `${server.origin}/as2`;
    server.route('/.well-known/oauth-authorization-server/as2', (_req, res) =>
      sendJson(res, 200, { issuer, jwks_uri: `${issuer}/jwks` }),
    );
    server.route(
      '/as2/jwks',
      keySetRoute(() => [keyA.publicJwk]),
    );
    const s = setup(issuer);
    await s.verifier.verify(s.token(keyA));
    expect(server.hits('/as2/.well-known/openid-configuration')).toBe(1);
    expect(server.hits('/.well-known/oauth-authorization-server/as2')).toBe(1);
  });

  it('refuses metadata that names another issuer, and never fetches its jwks_uri', async () => {
    const issuer = `${server.origin}/mismatch`;
    server.route('/mismatch/.well-known/openid-configuration', (_req, res) =>
      sendJson(res, 200, { issuer: 'https://evil.example', jwks_uri: `${server.origin}/mismatch/keys` }),
    );
    server.route(
      '/mismatch/keys',
      keySetRoute(() => [keyA.publicJwk]),
    );
    const s = setup(issuer);
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(server.hits('/mismatch/keys')).toBe(0);
  });

  it('refuses a discovered jwks_uri that is plain http on a non-loopback host', async () => {
    const issuer = `${server.origin}/insecure`;
    server.route('/insecure/.well-known/openid-configuration', (_req, res) =>
      sendJson(res, 200, { issuer, jwks_uri: 'http://keys.example/jwks' }),
    );
    const s = setup(issuer);
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
  });

  it('fails closed when no metadata exists', async () => {
    const s = setup(`${server.origin}/nothing-here`);
    expect(await codeOf(s.verifier.verify(s.token(keyA)))).toBe('SERVICE_UNAVAILABLE');
    expect(server.hits('/nothing-here/.well-known/openid-configuration')).toBe(1);
  });
});
