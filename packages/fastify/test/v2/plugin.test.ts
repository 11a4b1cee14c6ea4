/**
 * `@authsec/fastify/v2`: both eras at /mcp as ordinary Fastify routes, so the application's real security
 * plugins (@fastify/helmet, @fastify/cors, @fastify/rate-limit) run on MCP requests and their headers reach
 * every answer; `requireAuthSec(rs, requirement)` as a `preHandler` on REST routes with the MCP endpoint's
 * challenges. The v2 client, pinned to 2026-07-28 and in legacy mode.
 */
import { ADMIN, ADMIN_TOOLS, ANALYST, ANALYST_TOOLS, CORS_ORIGIN, post } from '@authsec/adapter-conformance';
import {
  attempt,
  closeAll,
  connect,
  ERAS,
  type Fixture,
  fixture,
  ISSUER,
  text,
} from '@authsec/adapter-conformance/v2';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { authSecPlugin, requireAuthSec } from '../../src/v2.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await closeAll();
  await Promise.allSettled(apps.splice(0).map((app) => app.close()));
});

/** The application: its security plugins first, then AuthSec, then REST routes; listening on the fixture's port. */
async function serve(f: Fixture, limit = 1000): Promise<string> {
  const app = Fastify();
  apps.push(app);
  await app.register(helmet);
  await app.register(cors, { origin: [CORS_ORIGIN], exposedHeaders: ['WWW-Authenticate'] });
  await app.register(rateLimit, { max: limit, timeWindow: 60_000 });
  await app.register(authSecPlugin, {
    server: f.server,
    authsec: f.authsec,
    resourceUrl: f.url,
    authorizationServers: [ISSUER],
    // The Origin check is AuthSec's (DNS rebinding); the CORS headers are the application's plugin's.
    allowedOrigins: [CORS_ORIGIN],
  });
  const me = async (request: { auth?: { scopes: string[]; extra: { principal: { subject: string } } } }) => ({
    subject: request.auth?.extra.principal.subject,
    scopes: request.auth?.scopes,
  });
  app.get('/api/me', { preHandler: requireAuthSec(app.authsec.resourceServer) }, me);
  app.post('/api/resources', { preHandler: app.authsec.require({ scopes: ['write'] }) }, me);
  app.get('/api/admin', { preHandler: app.authsec.require({ roles: ['admin'] }) }, me);
  await app.listen({ host: '127.0.0.1', port: f.port });
  return `http://127.0.0.1:${f.port}`;
}

const expectPluginHeaders = (headers: Headers) => {
  // @fastify/helmet's defaults and @fastify/rate-limit's counters.
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('content-security-policy')).toContain("default-src 'self'");
  expect(headers.get('x-ratelimit-limit')).toMatch(/^\d+$/);
};

describe.each(ERAS)('authSecPlugin on the v2 SDK, %s era', (era) => {
  it("lists exactly each caller's tools, with the application's plugins on every MCP answer", async () => {
    const f = await fixture();
    await serve(f);
    const seen: Headers[] = [];
    const admin = await connect(f.url, f.token(ADMIN), era, seen);
    const analyst = await connect(f.url, f.token(ANALYST), era, seen);
    expect((await admin.listTools()).tools.map((t) => t.name).sort()).toEqual([...ADMIN_TOOLS].sort());
    expect((await analyst.listTools()).tools.map((t) => t.name).sort()).toEqual([...ANALYST_TOOLS].sort());
    expect(text(await admin.callTool({ name: 'admin_panel', arguments: {} }))).toBe(
      'admin_panel by user-john',
    );
    for (const headers of seen) expectPluginHeaders(headers);
    expect(await attempt(analyst, 'admin_panel')).toBe(await attempt(analyst, 'no_such_tool'));
  });
});

describe('authSecPlugin over HTTP', () => {
  it('answers 401 with the challenge, with helmet, CORS and rate-limit headers', async () => {
    const f = await fixture();
    const base = await serve(f);
    const response = await post(
      `${base}/mcp`,
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      {
        origin: CORS_ORIGIN,
      },
    );
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('resource_metadata=');
    expect(response.headers.get('access-control-allow-origin')).toBe(CORS_ORIGIN);
    expectPluginHeaders(response.headers);
    expect(await response.json()).toMatchObject({ code: 'TOKEN_MISSING' });
  });

  it('the rate limiter refuses MCP requests past its limit (429) before AuthSec runs', async () => {
    const f = await fixture();
    const base = await serve(f, 2);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
      statuses.push(response.status);
      await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 429]);
    const mcp = await post(`${base}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(mcp.status).toBe(429);
    await mcp.body?.cancel();
  });

  it('leaves the body to the endpoint: 413 past maxBodyBytes, a JSON-RPC 400 for malformed JSON', async () => {
    const f = await fixture();
    const base = await serve(f);
    const auth = { authorization: `Bearer ${f.token(ADMIN)}` };
    const malformed = await post(`${base}/mcp`, '{"jsonrpc": ', auth);
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: -32700 } });
    const big = await post(`${base}/mcp`, JSON.stringify({ padding: 'x'.repeat(1024 * 1024 + 1) }), auth);
    expect(big.status).toBe(413);
    await big.body?.cancel();
  });
});

// The REST guard's answers (200, 401, 403, the audit) are the shared v2 suite's (test/v2/conformance.test.ts).
describe('requireAuthSec on REST routes', () => {
  it('rejects a bad requirement or a missing resource server at creation, a bad server at register', async () => {
    const f = await fixture();
    await serve(f);
    expect(() => requireAuthSec(undefined as never)).toThrow(TypeError);
    expect(() => apps[0]!.authsec.require({ roles: 'admin' } as never)).toThrow(TypeError);
    const app = Fastify();
    apps.push(app);
    await expect(app.register(authSecPlugin, { authsec: f.authsec } as never)).rejects.toThrow(TypeError);
  });
});
