/**
 * `@authsec/express/v2`: both eras at /mcp as ordinary Express middleware (so the application's helmet and
 * its own middleware run on MCP requests), metadata and health, and `requireAuthSec(requirement)` on REST
 * routes with the MCP endpoint's challenges. The v2 client, pinned to 2026-07-28 and in legacy mode.
 */
import { InsufficientScopeError } from '@modelcontextprotocol/client';
import express from 'express';
import helmet from 'helmet';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AuthSecMcpRouter,
  type AuthSecRequest,
  authSecMcpRouter,
  requireAuthSec,
} from '../../src/v2.js';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  attempt,
  closeAll,
  connect,
  ERAS,
  type Fixture,
  fixture,
  ISSUER,
  listen,
  text,
} from './helpers.js';

const routers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await closeAll();
  await Promise.allSettled(routers.splice(0).map((r) => r.close()));
});

const APP_HEADER = 'x-app-middleware';

/** The router for the fixture's server, closed after each test. */
function router(f: Fixture): AuthSecMcpRouter {
  const mcp = authSecMcpRouter({
    server: f.server,
    authsec: f.authsec,
    resourceUrl: f.url,
    authorizationServers: [ISSUER],
  });
  routers.push(mcp);
  return mcp;
}

/** The application: helmet and its own middleware first, then AuthSec, then REST routes. */
async function serve(f: Fixture): Promise<string> {
  const app = express();
  app.use(helmet());
  app.use((_req, res, next) => {
    res.setHeader(APP_HEADER, 'ran');
    next();
  });
  const mcp = router(f);
  app.use(mcp);
  const me = (req: AuthSecRequest, res: express.Response) => {
    const principal = req.auth?.extra?.principal as { subject: string };
    res.json({ subject: principal.subject, scopes: req.auth?.scopes });
  };
  app.get('/api/me', requireAuthSec(mcp.resourceServer), me);
  app.post('/api/resources', mcp.requireAuthSec({ scopes: ['write'] }), me);
  app.get('/api/admin', mcp.requireAuthSec({ roles: ['admin'] }), me);
  return listen(app, f.port);
}

const expectAppHeaders = (headers: Headers) => {
  expect(headers.get(APP_HEADER)).toBe('ran');
  // helmet's defaults.
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('content-security-policy')).toContain("default-src 'self'");
  expect(headers.get('x-powered-by')).toBeNull();
};

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

describe.each(ERAS)('authSecMcpRouter on the v2 SDK, %s era', (era) => {
  it("lists exactly each caller's tools, with the application's middleware on every MCP response", async () => {
    const f = await fixture();
    await serve(f);
    const seen: Headers[] = [];
    const admin = await connect(f.url, f.token(ADMIN), era, seen);
    expect((await admin.listTools()).tools.map((t) => t.name)).toEqual(ADMIN_TOOLS);
    expect(text(await admin.callTool({ name: 'admin_panel', arguments: {} }))).toBe(
      `admin_panel by ${ADMIN.sub}`,
    );
    const analyst = await connect(f.url, f.token(ANALYST), era);
    expect((await analyst.listTools()).tools.map((t) => t.name)).toEqual(ANALYST_TOOLS);
    expect(seen.length).toBeGreaterThan(1);
    for (const headers of seen) expectAppHeaders(headers);
  });

  it('refuses a hidden tool exactly as an unknown one', async () => {
    const f = await fixture();
    await serve(f);
    const analyst = await connect(f.url, f.token(ANALYST), era);
    const hidden = await attempt(analyst, 'admin_panel');
    expect(hidden).toBe(await attempt(analyst, 'no_such_tool'));
    expect(hidden).toMatch(/not found/i);
  });

  it('steps up with 403 insufficient_scope on a call that needs more scopes', async () => {
    const f = await fixture();
    await serve(f);
    const readOnly = await connect(f.url, f.token({ ...ADMIN, scope: 'read' }), era);
    const error = await readOnly.callTool({ name: 'create_resource', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InsufficientScopeError);
    expect(String((error as Error).message)).toContain('write');
  });
});

describe('authSecMcpRouter over HTTP', () => {
  it('answers 401 with the challenge naming the metadata without a token, with helmet headers', async () => {
    const f = await fixture();
    const base = await serve(f);
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(INITIALIZE),
    });
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).not.toContain('error=');
    expectAppHeaders(res.headers);
  });

  it('serves the metadata (path and root form) and health through the same middleware', async () => {
    const f = await fixture();
    const base = await serve(f);
    for (const path of [
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      const doc = (await res.json()) as { resource: string; authorization_servers: string[] };
      expect(doc.resource).toBe(f.url);
      expect(doc.authorization_servers).toEqual([ISSUER]);
      expectAppHeaders(res.headers);
    }
    const live = await fetch(`${base}/healthz`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok' });
    expectAppHeaders(live.headers);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    // Other paths go on to the application (Express's own 404 here).
    expect((await fetch(`${base}/nothing-here`)).status).toBe(404);
  });
});

// The REST guard's answers (200, 401, 403, the audit) are the shared v2 suite's (test/v2/conformance.test.ts).
describe('requireAuthSec on REST routes', () => {
  it('rejects a bad requirement or a missing resource server at creation', async () => {
    const f = await fixture();
    const mcp = router(f);
    expect(() => mcp.requireAuthSec({ roles: 'admin' } as never)).toThrow();
    expect(() => requireAuthSec(undefined as never)).toThrow(TypeError);
    expect(() => authSecMcpRouter({ authsec: f.authsec } as never)).toThrow(TypeError);
  });
});
