/**
 * The tool-based login over HTTP with its OAuth callback route on the Express application (no loopback listener
 * of its own): the official SDK client without a token calls `oauth_start`, a scripted browser signs in at the
 * real dev IdP, which redirects to this app's `/callback`; the caller's tools then appear.
 */
import { once } from 'node:events';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AuthSec,
  createAuthSec,
  createMemorySessionStore,
  createOAuthClient,
  silentLogger,
} from '@authsec/core';
import { DEMO_USERS, type DevIdp, signIn, startDevIdp } from '@authsec/dev-idp';
import { type AuthSecMcpServer, createAuthSecServer, createToolLogin, protect } from '@authsec/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthSecMcpRouter, authSecMcpRouter } from '../src/index.js';

const ADMIN = DEMO_USERS.find((u) => u.roles?.includes('admin'))!;
const LOGIN_TOOLS = ['oauth_start', 'oauth_authenticate', 'oauth_status', 'oauth_logout', 'oauth_user_info'];

/** A GET with a chosen `Host` header (fetch does not let one set it). */
function getWithHost(url: URL, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let idp: DevIdp;
let authsec: AuthSec;
let server: AuthSecMcpServer;
let router: AuthSecMcpRouter;
let http: ReturnType<express.Express['listen']>;
let origin: string;

beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
  const app = express();
  http = app.listen(0, '127.0.0.1');
  await once(http, 'listening');
  origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const resourceUrl = `${origin}/mcp`;
  authsec = createAuthSec({ issuers: [idp.issuer], audience: resourceUrl, logger: silentLogger });
  const login = createToolLogin({
    authsec,
    oauth: () =>
      createOAuthClient({
        issuer: idp.issuer,
        clientId: 'authsec-dev',
        resource: resourceUrl,
        scopes: ['openid', 'read', 'write', 'admin'],
        logger: silentLogger,
      }),
    sessions: createMemorySessionStore(),
    // The dev IdP's public client accepts loopback redirect URIs ending in /callback, on any port.
    callback: { redirectUri: `${origin}/callback` },
    logger: silentLogger,
  });
  expect(login.callbackRoute?.path).toBe('/callback');
  server = createAuthSecServer({
    name: 'login-callback',
    version: '1.0.0',
    authsec,
    login,
    tools: [protect('admin_panel', { roles: ['admin'] }, () => 'admin only')],
  });
  router = authSecMcpRouter({
    server,
    authsec,
    resourceUrl,
    authorizationServers: [idp.issuer],
    allowToolLogin: true,
    loginCallback: login.callbackRoute!,
  });
  app.use(router);
  app.get('/other', (_req, res) => void res.send('the application'));
});

afterAll(async () => {
  await router?.close();
  await server?.close();
  http?.closeAllConnections();
  await new Promise((resolve) => http?.close(resolve));
  await idp?.close();
});

describe('the tool-based login callback route on Express', () => {
  it('completes a code + PKCE login started over MCP, and shows the caller its tools', async () => {
    const client = new Client({ name: 'login-e2e', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${origin}/mcp`)));
    try {
      const before = await client.listTools();
      expect(before.tools.map((t) => t.name)).toEqual(LOGIN_TOOLS);

      const started = await client.callTool({ name: 'oauth_start', arguments: {} });
      const body = started.structuredContent as { status: string; authorization_url: string };
      expect(body.status).toBe('ready_for_authentication');
      const authorizationUrl = new URL(body.authorization_url);
      expect(authorizationUrl.searchParams.get('redirect_uri')).toBe(`${origin}/callback`);

      const callback = await signIn(authorizationUrl, ADMIN.email, ADMIN.password);
      expect(`${callback.origin}${callback.pathname}`).toBe(`${origin}/callback`);
      // A request to the callback with another Host (DNS rebinding) is refused before the state is used.
      const rebound = await getWithHost(callback, `rebound.example:${callback.port}`);
      expect(rebound.status).toBe(400);
      expect(rebound.body).toContain('Wrong address');

      const page = await fetch(callback);
      expect(page.status).toBe(200);
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(await page.text()).toContain('Login complete');

      const after = await client.listTools();
      expect(after.tools.map((t) => t.name)).toEqual([...LOGIN_TOOLS, 'admin_panel']);
      const result = await client.callTool({ name: 'admin_panel', arguments: {} });
      expect(result.isError).toBeFalsy();
      expect(result.content).toEqual([{ type: 'text', text: 'admin only' }]);

      // The state is single-use: the same callback again is refused.
      const replay = await fetch(callback);
      expect(replay.status).toBe(400);
      expect(await replay.text()).toContain('Login not recognised');
    } finally {
      await client.close();
    }
  });

  it('answers only GET and HEAD there, and leaves the application its other routes', async () => {
    const post = await fetch(`${origin}/callback`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const unknown = await fetch(`${origin}/callback?state=unknown&code=x`);
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('Login not recognised');
    const other = await fetch(`${origin}/other`);
    expect(await other.text()).toBe('the application');
  });
});
