import { request } from 'node:http';
import { createAuthSec, silentLogger } from '@authsec/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMcpHttpHandler, type RunningHttpServer, startHttpServer } from '../src/http.js';
import { type AuthSecMcpServer, createAuthSecServer } from '../src/server.js';
import { ALICE, ALICE_TOOLS, JOHN, JOHN_TOOLS } from './fixtures/sample-tools.js';
import { createTestEngine, eventually, sampleTools, type TestEngine } from './helpers/app.js';
import { FakeDirectory } from './helpers/fake-directory.js';
import { FakeLoginProvider } from './helpers/fake-login-provider.js';
import { connectHttpClient, freePort, type HttpTestClient, INITIALIZE, post } from './helpers/http.js';

type CallResult = { content: { text?: string }[]; isError?: boolean; _meta?: Record<string, unknown> };

interface Deployment {
  readonly engine: TestEngine;
  readonly mcp: AuthSecMcpServer;
  readonly http: RunningHttpServer;
  readonly url: string;
  readonly origin: string;
  readonly directory: FakeDirectory;
}

async function deploy(
  options: {
    stateless?: boolean;
    login?: boolean;
    allowToolLogin?: boolean;
    sessionIdleTimeoutMs?: number;
    insufficientScope?: 'http' | 'result';
  } = {},
): Promise<Deployment> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const url = `${origin}/mcp`;
  const directory = new FakeDirectory();
  const engine = createTestEngine({ audience: url, directory });
  const mcp = createAuthSecServer({
    name: 'http-test',
    version: '1.0.0',
    tools: sampleTools(),
    authsec: engine.authsec,
    directory,
    ...(options.login ? { login: new FakeLoginProvider(engine.authsec) } : {}),
  });
  const http = await startHttpServer({
    server: mcp,
    authsec: engine.authsec,
    port,
    authorizationServers: [engine.issuer.issuer],
    stateless: options.stateless === true,
    allowToolLogin: options.allowToolLogin === true,
    ...(options.sessionIdleTimeoutMs ? { sessionIdleTimeoutMs: options.sessionIdleTimeoutMs } : {}),
    ...(options.insufficientScope ? { insufficientScope: options.insufficientScope } : {}),
  });
  return { engine, mcp, http, url, origin, directory };
}

async function teardown(d: Deployment): Promise<void> {
  await d.http.close();
  await d.mcp.close();
}

const clients: HttpTestClient[] = [];
async function client(url: string, token?: string): Promise<HttpTestClient> {
  const c = await connectHttpClient(url, token);
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
});

describe('Streamable HTTP, stateful', () => {
  let d: Deployment;
  let johnToken: string;
  let aliceToken: string;
  beforeAll(async () => {
    d = await deploy();
    johnToken = d.engine.token(JOHN);
    aliceToken = d.engine.token(ALICE);
  });
  afterAll(() => teardown(d));

  it('serves the protected resource metadata at the path form and the root form', async () => {
    const expected = {
      resource: d.url,
      authorization_servers: [d.engine.issuer.issuer],
      scopes_supported: ['write', 'read', 'admin'],
      bearer_methods_supported: ['header'],
      resource_name: 'http-test',
    };
    for (const path of [
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]) {
      const response = await fetch(`${d.origin}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await response.json()).toEqual(expected);
    }
    expect(d.http.resourceMetadataUrl).toBe(`${d.origin}/.well-known/oauth-protected-resource/mcp`);
  });

  it('answers 401 with a challenge naming the metadata when no token is sent', async () => {
    const response = await post(d.url, INITIALIZE);
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${d.origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).toContain('scope="write read admin"');
    expect(challenge).not.toContain('error=');
    expect(await response.json()).toMatchObject({ code: 'TOKEN_MISSING' });
  });

  it('answers 401 invalid_token for a bad token, a forged one and one for another audience', async () => {
    const forged = `${johnToken.slice(0, johnToken.lastIndexOf('.'))}.${'A'.repeat(86)}`;
    const otherAudience = d.engine.issuer.sign({ ...JOHN, aud: 'https://other.example/mcp' });
    for (const token of ['not-a-jwt', forged, otherAudience]) {
      const response = await post(d.url, INITIALIZE, { authorization: `Bearer ${token}` });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(response.headers.get('www-authenticate')).toContain('resource_metadata=');
    }
    const basic = await post(d.url, INITIALIZE, { authorization: 'Basic dXNlcjpwYXNz' });
    expect(basic.status).toBe(401);
  });

  it('lists per caller: two tokens see different tools', async () => {
    const john = await client(d.url, johnToken);
    const alice = await client(d.url, aliceToken);
    expect(await john.toolNames()).toEqual(JOHN_TOOLS);
    expect(await alice.toolNames()).toEqual(ALICE_TOOLS);
  });

  it('authorizes every call', async () => {
    const john = await client(d.url, johnToken);
    const alice = await client(d.url, aliceToken);
    const hello = (await john.client.callTool({ name: 'hello', arguments: {} })) as CallResult;
    expect(hello.content[0]?.text).toBe('Hello, john@company.com!');
    // The default, as on every adapter: a 403 insufficient_scope challenge before the server runs the call.
    await expect(alice.client.callTool({ name: 'create_resource', arguments: {} })).rejects.toThrow(
      /insufficient_scope/,
    );
    const stepUp = await post(
      d.url,
      { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'create_resource', arguments: {} } },
      {
        authorization: `Bearer ${aliceToken}`,
        'mcp-session-id': alice.transport.sessionId!,
      },
    );
    expect(stepUp.status).toBe(403);
    expect(stepUp.headers.get('www-authenticate')).toContain('scope="write read"');
    const hidden = (await alice.client.callTool({ name: 'admin_panel', arguments: {} })) as CallResult;
    expect(hidden.isError).toBe(true);
    await expect(alice.client.ping()).resolves.toEqual({});
  });

  it('decides and audits an allowed call once, and refuses two Authorization headers and a rebinding Host', async () => {
    const before = d.engine.sink.events.length;
    const john = await client(d.url, johnToken);
    await john.client.callTool({ name: 'hello', arguments: {} });
    const hello = d.engine.sink.events
      .slice(before)
      .filter((e) => e.action === 'tool.call' && e.target === 'hello');
    expect(hello.map((e) => e.decision)).toEqual(['allow']);
    const raw = (headers: string[]) =>
      new Promise<{ status: number; body: string; challenge: string | undefined }>((resolve, reject) => {
        const body = JSON.stringify(INITIALIZE);
        const req = request(
          d.url,
          {
            method: 'POST',
            headers: [
              ...headers,
              'Content-Type',
              'application/json',
              'Accept',
              'application/json, text/event-stream',
            ],
          },
          (res) => {
            let text = '';
            res.on('data', (chunk) => (text += chunk));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: text,
                challenge: res.headers['www-authenticate'],
              }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const twice = await raw([
      'Host',
      new URL(d.url).host,
      'Authorization',
      `Bearer ${johnToken}`,
      'Authorization',
      `Bearer ${aliceToken}`,
    ]);
    expect(twice.status).toBe(400);
    expect(JSON.parse(twice.body)).toMatchObject({ code: 'BAD_REQUEST', error: 'invalid_request' });
    expect(twice.challenge).toMatch(/^Bearer error="invalid_request"/);
    const rebound = await raw([
      'Host',
      `evil.test:${new URL(d.url).port}`,
      'Authorization',
      `Bearer ${johnToken}`,
    ]);
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body)).toMatchObject({ error: { message: 'Forbidden: Host not allowed' } });
  });

  it("with insufficientScope: 'result', answers the step-up as an isError result, decided once", async () => {
    const r = await deploy({ insufficientScope: 'result' });
    try {
      const alice = await client(r.url, r.engine.token(ALICE));
      const denied = (await alice.client.callTool({ name: 'create_resource', arguments: {} })) as CallResult;
      expect(denied.isError).toBe(true);
      expect(denied._meta?.['authsec/error']).toMatchObject({
        code: 'INSUFFICIENT_SCOPE',
        scopes: ['write', 'read'],
      });
      const calls = r.engine.sink.events.filter(
        (e) => e.action === 'tool.call' && e.target === 'create_resource',
      );
      expect(calls.map((e) => e.reason)).toEqual(['INSUFFICIENT_SCOPE']);
    } finally {
      await teardown(r);
    }
  });

  it('binds a session to its subject: another subject presenting it gets 404', async () => {
    const init = await post(d.url, INITIALIZE, { authorization: `Bearer ${johnToken}` });
    expect(init.status).toBe(200);
    await init.body?.cancel();
    const sessionId = init.headers.get('mcp-session-id');
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
    const stolen = await post(d.url, ping, {
      authorization: `Bearer ${aliceToken}`,
      'mcp-session-id': sessionId!,
    });
    expect(stolen.status).toBe(404);
    expect(await stolen.json()).toMatchObject({ error: { code: -32001, message: 'Session not found' } });
    const unknown = await post(d.url, ping, {
      authorization: `Bearer ${johnToken}`,
      'mcp-session-id': '00000000-0000-4000-8000-000000000000',
    });
    expect(unknown.status).toBe(404);
    const own = await post(d.url, ping, {
      authorization: `Bearer ${johnToken}`,
      'mcp-session-id': sessionId!,
    });
    expect(own.status).toBe(200);
    expect(await own.text()).toContain('"result":{}');
    // A session never authenticates: the session id without a token is 401.
    const tokenless = await post(d.url, ping, { 'mcp-session-id': sessionId! });
    expect(tokenless.status).toBe(401);
    expect(d.engine.sink.events).toContainEqual(
      expect.objectContaining({ action: 'authenticate', target: 'mcp-session', subject: 'user-alice' }),
    );
  });

  it('requires a session id on requests other than initialize', async () => {
    const response = await post(
      d.url,
      { jsonrpc: '2.0', id: 3, method: 'ping' },
      {
        authorization: `Bearer ${johnToken}`,
      },
    );
    expect(response.status).toBe(400);
  });

  it('refuses a foreign Origin (403) and accepts its own', async () => {
    const evil = await post(d.url, INITIALIZE, {
      authorization: `Bearer ${johnToken}`,
      origin: 'http://evil.example',
    });
    expect(evil.status).toBe(403);
    for (const origin of [d.origin, d.origin.replace('127.0.0.1', 'localhost')]) {
      const own = await post(d.url, INITIALIZE, { authorization: `Bearer ${johnToken}`, origin });
      expect(own.status).toBe(200);
      await own.body?.cancel();
    }
  });

  it('answers malformed JSON with a 400 JSON-RPC parse error', async () => {
    const response = await post(d.url, '{"jsonrpc": "2.0", ', { authorization: `Bearer ${johnToken}` });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null });
  });

  it('answers an oversized body with 413, declared or streamed', async () => {
    const big = JSON.stringify({ ...INITIALIZE, padding: 'x'.repeat(1024 * 1024) });
    const declared = await post(d.url, big, { authorization: `Bearer ${johnToken}` });
    expect(declared.status).toBe(413);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        d.url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${johnToken}`,
            'transfer-encoding': 'chunked',
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      let sent = 0;
      const write = () => {
        while (sent < 20) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    expect(status).toBe(413);
  });

  it('refuses other methods with 405 and unknown paths with 404', async () => {
    const put = await fetch(d.url, { method: 'PUT', headers: { authorization: `Bearer ${johnToken}` } });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST, DELETE');
    expect((await fetch(`${d.origin}/other`)).status).toBe(404);
  });

  it('closes a session on DELETE', async () => {
    const before = d.http.handler.sessionCount;
    const john = await client(d.url, johnToken);
    expect(d.http.handler.sessionCount).toBe(before + 1);
    await john.transport.terminateSession();
    await eventually(() => expect(d.http.handler.sessionCount).toBe(before));
  });

  it('sends tools/list_changed on the session stream when the caller’s grants change', async () => {
    const john = await client(d.url, johnToken);
    const alice = await client(d.url, aliceToken);
    await john.toolNames();
    await alice.toolNames();
    await eventually(async () => {
      d.directory.announce({ tenantId: 'acme-corp', subject: 'user-john' });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(john.listChanged()).toBeGreaterThan(0);
    }, 3000);
    expect(alice.listChanged()).toBe(0);
  });
});

describe('Streamable HTTP, stateless', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ stateless: true });
  });
  afterAll(() => teardown(d));

  it('serves each request with a fresh server and no session', async () => {
    const john = await client(d.url, d.engine.token(JOHN));
    expect(john.transport.sessionId).toBeUndefined();
    expect(await john.toolNames()).toEqual(JOHN_TOOLS);
    const alice = await client(d.url, d.engine.token(ALICE));
    expect(await alice.toolNames()).toEqual(ALICE_TOOLS);
    const hello = (await john.client.callTool({ name: 'hello', arguments: {} })) as CallResult;
    expect(hello.content[0]?.text).toBe('Hello, john@company.com!');
    await eventually(() => expect(d.mcp.connectionIds()).toEqual([]));
  });

  it('refuses GET and DELETE with 405', async () => {
    const response = await fetch(d.url, {
      headers: { authorization: `Bearer ${d.engine.token(JOHN)}`, accept: 'text/event-stream' },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });
});

describe('tool-based login over HTTP (explicit opt-in)', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ login: true, allowToolLogin: true });
  });
  afterAll(() => teardown(d));

  it('lets a loopback client without a token log in with the login tools', async () => {
    const anonymous = await client(d.url);
    expect(await anonymous.toolNames()).toEqual(['oauth_authenticate', 'oauth_status', 'oauth_logout']);
    await anonymous.client.callTool({
      name: 'oauth_authenticate',
      arguments: { jwt_token: d.engine.token(JOHN) },
    });
    expect(await anonymous.toolNames()).toEqual([
      'oauth_authenticate',
      'oauth_status',
      'oauth_logout',
      ...JOHN_TOOLS,
    ]);
    await eventually(() => expect(anonymous.listChanged()).toBeGreaterThan(0));
  });

  it('still verifies a token when one is sent, and binds sessions to it', async () => {
    const bad = await post(d.url, INITIALIZE, { authorization: 'Bearer nope' });
    expect(bad.status).toBe(401);
    const anonymous = await client(d.url);
    const sessionId = anonymous.transport.sessionId!;
    const withToken = await post(
      d.url,
      { jsonrpc: '2.0', id: 9, method: 'ping' },
      {
        authorization: `Bearer ${d.engine.token(JOHN)}`,
        'mcp-session-id': sessionId,
      },
    );
    expect(withToken.status).toBe(404);
  });
});

describe('idle sessions', () => {
  it('are closed after the idle timeout, and then answer 404', async () => {
    const d = await deploy({ sessionIdleTimeoutMs: 50 });
    try {
      const token = d.engine.token(JOHN);
      const init = await post(d.url, INITIALIZE, { authorization: `Bearer ${token}` });
      await init.body?.cancel();
      const sessionId = init.headers.get('mcp-session-id')!;
      expect(d.http.handler.sessionCount).toBe(1);
      await eventually(() => expect(d.http.handler.sessionCount).toBe(0));
      expect(d.mcp.connectionIds()).toEqual([]);
      const late = await post(
        d.url,
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        {
          authorization: `Bearer ${token}`,
          'mcp-session-id': sessionId,
        },
      );
      expect(late.status).toBe(404);
    } finally {
      await teardown(d);
    }
  });
});

describe('health and readiness', () => {
  it('are served at /healthz and /readyz (GET, HEAD), unauthenticated, and can be moved or turned off', async () => {
    const engine = createTestEngine();
    const mcp = createAuthSecServer({ name: 's', version: '1', tools: [], authsec: engine.authsec });
    const base = { server: mcp, authsec: engine.authsec, authorizationServers: ['https://idp.example'] };
    const http = await startHttpServer(base);
    const moved = await startHttpServer({ ...base, healthPaths: { live: '/live', ready: '/ready' } });
    const off = await startHttpServer({ ...base, healthPaths: false });
    try {
      const origin = new URL(http.url).origin;
      const live = await fetch(`${origin}/healthz`);
      expect(live.status).toBe(200);
      expect(live.headers.get('cache-control')).toBe('no-store');
      expect(await live.json()).toEqual({ status: 'ok' });
      expect(await (await fetch(`${origin}/readyz?probe=1`)).json()).toEqual({
        status: 'ready',
        resource: http.url,
        checks: {},
      });
      expect((await fetch(`${origin}/healthz`, { method: 'HEAD' })).status).toBe(200);
      const post = await fetch(`${origin}/healthz`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');

      const movedOrigin = new URL(moved.url).origin;
      expect((await fetch(`${movedOrigin}/live`)).status).toBe(200);
      expect((await fetch(`${movedOrigin}/healthz`)).status).toBe(404);
      expect((await fetch(`${new URL(off.url).origin}/healthz`)).status).toBe(404);
    } finally {
      await Promise.all([http.close(), moved.close(), off.close()]);
      await mcp.close();
    }
  });

  it('readiness is 503 while the key set of an issuer cannot be fetched; liveness stays 200', async () => {
    const down = 'http://127.0.0.1:9/idp'; // nothing listens on port 9 of loopback
    const authsec = createAuthSec({
      issuers: [{ issuer: down, jwksUrl: `${down}/jwks` }],
      audience: 'http://127.0.0.1/mcp',
      logger: silentLogger,
    });
    const mcp = createAuthSecServer({ name: 's', version: '1', tools: [], authsec });
    const http = await startHttpServer({ server: mcp, authsec, authorizationServers: [down] });
    try {
      const origin = new URL(http.url).origin;
      const ready = await fetch(`${origin}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({
        status: 'unavailable',
        resource: http.url,
        checks: { [`keys ${down}`]: 'unavailable' },
      });
      expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    } finally {
      await http.close();
      await mcp.close();
    }
  });

  it('refuse a health path that is not a path, or that takes the MCP path', async () => {
    const engine = createTestEngine();
    const mcp = createAuthSecServer({ name: 's', version: '1', tools: [], authsec: engine.authsec });
    const base = {
      server: mcp,
      authsec: engine.authsec,
      resourceUrl: 'http://127.0.0.1:1/mcp',
      authorizationServers: ['https://idp.example'],
    };
    expect(() =>
      createMcpHttpHandler({ ...base, healthPaths: { live: 'healthz', ready: '/readyz' } }),
    ).toThrow('healthPaths.live must be a path starting with /');
    expect(() => createMcpHttpHandler({ ...base, healthPaths: { live: '/healthz', ready: '/mcp' } })).toThrow(
      'The path /mcp is both the MCP path and another route',
    );
    await mcp.close();
  });
});

describe('other paths', () => {
  it('go to the fallback when one is given', async () => {
    const engine = createTestEngine();
    const mcp = createAuthSecServer({ name: 's', version: '1', tools: [], authsec: engine.authsec });
    const http = await startHttpServer({
      server: mcp,
      authsec: engine.authsec,
      authorizationServers: ['https://idp.example'],
      fallback: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('callback');
      },
    });
    try {
      const origin = new URL(http.url).origin;
      expect(await (await fetch(`${origin}/oauth/callback?code=x`)).text()).toBe('callback');
      expect((await post(http.url, INITIALIZE)).status).toBe(401);
    } finally {
      await http.close();
      await mcp.close();
    }
  });
});

describe('configuration errors', () => {
  it('are TypeErrors at creation', async () => {
    const engine = createTestEngine();
    const mcp = createAuthSecServer({ name: 's', version: '1', tools: [], authsec: engine.authsec });
    const base = { server: mcp, authsec: engine.authsec, authorizationServers: ['https://idp.example'] };
    expect(() => createMcpHttpHandler({ ...base, resourceUrl: 'not a url' })).toThrow(TypeError);
    expect(() => createMcpHttpHandler({ ...base, resourceUrl: 'http://127.0.0.1/mcp/' })).toThrow(TypeError);
    expect(() => createMcpHttpHandler({ ...base, resourceUrl: 'http://127.0.0.1/mcp#x' })).toThrow(TypeError);
    expect(() =>
      createMcpHttpHandler({ ...base, resourceUrl: 'http://127.0.0.1/mcp', authorizationServers: [] }),
    ).toThrow(/authorizationServers/);
    expect(() =>
      createMcpHttpHandler({
        ...base,
        resourceUrl: 'http://127.0.0.1/mcp',
        stateless: true,
        allowToolLogin: true,
      }),
    ).toThrow(/stateless/);
    await expect(startHttpServer({ ...base, host: '0.0.0.0', allowToolLogin: true })).rejects.toThrow(
      /loopback/,
    );
    await mcp.close();
  });
});
