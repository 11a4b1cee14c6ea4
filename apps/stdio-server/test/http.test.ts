/**
 * The same sample tools over Streamable HTTP (the MCP authorization spec): `runMcpServerWithOAuth({ transport:
 * 'http' })` in this process against a dev IdP of the test's own. Tokens come from a real login (authorization
 * code + PKCE through the dev IdP's sign-in form, with the server's URL as RFC 8707 resource), and the official
 * SDK client presents them as bearer tokens.
 */
import { createOAuthClient, generateCodeVerifier, generateNonce } from '@authsec/core';
import { type DevIdp, signIn, startDevIdp } from '@authsec/dev-idp';
import { type RunningMcpServer, runMcpServerWithOAuth } from '@authsec/mcp';
import { createSampleTools } from '@authsec/sample-tools';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  errorCode,
  forge,
  freePort,
  tempDir,
  textOf,
} from './helpers/stdio.js';

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'raw-client', version: '1.0.0' },
  },
};
const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};

interface Metadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: string[];
  resource_name: string;
}

describe('Streamable HTTP: runMcpServerWithOAuth as an OAuth resource server', () => {
  const data = tempDir('http');
  const clients: Client[] = [];
  let idp: DevIdp;
  let running: RunningMcpServer;
  let url: string;
  let origin: string;
  let metadata: Metadata;
  let adminToken: string;
  let analystToken: string;

  /** A real login: authorization code + PKCE through the sign-in form, tokens for this server's URL. */
  async function login(user: { email: string; password: string }): Promise<string> {
    const oauth = await createOAuthClient({
      issuer: idp.issuer,
      clientId: 'authsec-dev',
      resource: url,
      // What a client learns from the server's metadata.
      scopes: ['openid', ...metadata.scopes_supported],
    });
    const redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
    const state = generateNonce();
    const nonce = generateNonce();
    const codeVerifier = generateCodeVerifier();
    const authorization = await oauth.authorizationRequest({ redirectUri, state, nonce, codeVerifier });
    const back = await signIn(authorization, user.email, user.password);
    expect(back.searchParams.get('code')).toBeTruthy();
    const tokens = await oauth.exchangeCode({ callbackUrl: back, state, nonce, codeVerifier, redirectUri });
    return tokens.accessToken;
  }

  async function connect(token: string): Promise<Client> {
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: 'authsec-e2e-http', version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  const names = async (client: Client) => (await client.listTools()).tools.map((t) => t.name);
  const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
    (await client.callTool({ name, arguments: args })) as CallToolResult;

  beforeAll(async () => {
    idp = await startDevIdp({ port: 0 });
    // The resource URL must be the listening URL (it is the audience): choose the port first.
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    url = `${origin}/mcp`;
    running = await runMcpServerWithOAuth({
      appName: 'AuthSec e2e over HTTP',
      version: '1.0.0',
      tools: createSampleTools(),
      transport: 'http',
      port,
      handleSignals: false,
      exitOnClose: false,
      env: {
        AUTHSEC_ISSUER: idp.issuer,
        AUTHSEC_RESOURCE_URL: url,
        AUTHSEC_DATA_DIR: data.path,
        AUTHSEC_LOG_LEVEL: 'warn',
      },
    });
    metadata = (await (await fetch(`${origin}/.well-known/oauth-protected-resource/mcp`)).json()) as Metadata;
    [adminToken, analystToken] = await Promise.all([login(ADMIN), login(ANALYST)]);
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await running?.close();
    await idp?.close();
    data.remove();
  });

  it('serves at the resource URL', () => {
    expect(running.url).toBe(url);
  });

  it('the protected resource metadata (path and root forms) names this server and the dev IdP', async () => {
    expect(metadata).toMatchObject({
      resource: url,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      resource_name: 'AuthSec e2e over HTTP',
    });
    expect(metadata.scopes_supported).toEqual(expect.arrayContaining(['read', 'write']));
    expect(metadata.scopes_supported).not.toContain('offline_access');
    const root = await fetch(`${origin}/.well-known/oauth-protected-resource`);
    expect(root.status).toBe(200);
    expect(await root.json()).toEqual(metadata);
  });

  it('no token: 401 with a Bearer challenge naming the metadata URL', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: MCP_HEADERS,
      body: JSON.stringify(INITIALIZE),
    });
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).not.toContain('error=');
  });

  it('a forged token or a token for another audience: 401 invalid_token', async () => {
    const forgedToken = forge(adminToken);
    const elsewhere = await idp.issueToken(ADMIN.email, { audience: 'http://127.0.0.1:1/mcp' });
    for (const token of [forgedToken, elsewhere, 'not-a-jwt']) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
        body: JSON.stringify(INITIALIZE),
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    }
    await expect(connect(forgedToken)).rejects.toThrow();
  });

  it("a real login's token: exactly that user's tools, no login tools", async () => {
    const admin = await connect(adminToken);
    expect(await names(admin)).toEqual([...ADMIN_TOOLS]);
  });

  it("calls run with the caller's identity; allowed and denied calls", async () => {
    const admin = await connect(adminToken);
    const analyst = await connect(analystToken);
    expect(textOf(await call(admin, 'hello'))).toBe(`Hello, ${ADMIN.email}!`);
    expect(textOf(await call(admin, 'admin_panel'))).toBe('Admin panel accessed');
    expect(textOf(await call(admin, 'create_resource', { name: 'Project Alpha' }))).toBe(
      "Resource 'Project Alpha' created successfully!",
    );
    expect(textOf(await call(analyst, 'hello'))).toBe(`Hello, ${ANALYST.email}!`);
    expect(textOf(await call(analyst, 'view_reports'))).toBe('Business reports');
    // More scopes alone would allow it: a 403 insufficient_scope challenge naming them, as on every adapter.
    await expect(call(analyst, 'create_resource', { name: 'Nope' })).rejects.toThrow(
      /"error":"insufficient_scope".*"code":"INSUFFICIENT_SCOPE"/,
    );
    const hidden = await call(analyst, 'admin_panel');
    expect(hidden.isError).toBe(true);
    expect(errorCode(hidden)).toBe('PERMISSION_DENIED');
  });

  it('two users at once see different lists', async () => {
    const [admin, analyst] = await Promise.all([connect(adminToken), connect(analystToken)]);
    const [a, b] = await Promise.all([names(admin), names(analyst)]);
    expect(a).toEqual([...ADMIN_TOOLS]);
    expect(b).toEqual([...ANALYST_TOOLS]);
  });

  it("an MCP session is bound to its subject: another user's token cannot use it", async () => {
    const admin = await connect(adminToken);
    const sessionId = (admin.transport as StreamableHTTPClientTransport).sessionId;
    expect(sessionId).toBeTruthy();
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${analystToken}`, 'mcp-session-id': sessionId! },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(404);
    // And a session never authenticates: the same session without a token is 401.
    const anonymous = await fetch(url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': sessionId! },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} }),
    });
    expect(anonymous.status).toBe(401);
  });
});
