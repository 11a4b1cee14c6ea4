/**
 * The shared HTTP adapter conformance suite: written once, run by every AuthSec HTTP adapter's tests (as
 * oidc-provider runs one suite per framework). Each scenario talks to a real server on 127.0.0.1 with `fetch`
 * and the official SDK client; tokens are signed here with a local ES256 key the engine trusts.
 *
 * @packageDocumentation
 */

import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createServer as createHttpServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import {
  type AuthSec,
  createAuthSec,
  type IssuerOptions,
  MemoryAuditSink,
  silentLogger,
} from '@authsec/core';
import { type AuthSecMcpServer, createAuthSecServer } from '@authsec/mcp';
import { createSampleTools } from '@authsec/sample-tools';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The options every adapter's MCP entry point accepts; pass them through unchanged. */
export interface AdapterOptions {
  readonly server: AuthSecMcpServer;
  readonly authsec: AuthSec;
  readonly resourceUrl: string;
  readonly authorizationServers: readonly string[];
  readonly stateless: boolean;
  readonly insufficientScope: 'http';
  readonly cors: { readonly origins: readonly string[] };
}

/** What the suite hands to an adapter's `start`. */
export interface AdapterContext {
  /** Listen here (loopback only). */
  readonly host: '127.0.0.1';
  /** Listen on this port: the resource URL (the tokens' audience) names it. */
  readonly port: number;
  /** The options to give the adapter's MCP router, plugin or module. */
  readonly options: AdapterOptions;
}

/** A running adapter. */
export interface StartedAdapter {
  /** The MCP endpoint URL (must equal `options.resourceUrl`). */
  readonly url: string;
  /** Stops listening and closes sessions. */
  close(): Promise<void>;
}

/** Starts an adapter for one scenario group. */
export type StartAdapter = (ctx: AdapterContext) => Promise<StartedAdapter>;

/** The origin the suite configures for CORS (and so accepts). */
export const CORS_ORIGIN = 'https://app.conformance.example';

/** An administrator: sees and may call nearly everything. */
export const ADMIN = Object.freeze({
  sub: 'user-john',
  email: 'john@company.com',
  tenant_id: 'acme-corp',
  roles: ['admin', 'developer'],
  groups: ['engineering'],
  scope: 'read write',
  resources: ['projects', 'analytics'],
});

/** An analyst: read scope, analytics resource. */
export const ANALYST = Object.freeze({
  sub: 'user-alice',
  email: 'alice@company.com',
  tenant_id: 'acme-corp',
  roles: ['analyst'],
  groups: [],
  scope: 'read',
  resources: ['analytics'],
});

/** The tools each caller must see, in the sample table's order. */
export const ADMIN_TOOLS = [
  'hello',
  'calculator',
  'admin_panel',
  'admin_dashboard',
  'create_resource',
  'view_analytics',
  'view_reports',
  'engineering_tools',
  'list_my_repos',
];
export const ANALYST_TOOLS = ['hello', 'calculator', 'view_analytics', 'view_reports', 'list_my_repos'];

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'conformance', version: '1.0.0' },
  },
};

type Jwk = NonNullable<IssuerOptions['keys']>[number];

/** A local ES256 key an engine can trust (`jwk`), and `sign`, which issues tokens with it. */
export interface TestSigner {
  readonly jwk: Jwk;
  /** Signs `claims` over `iss`, `aud` (when `audience` is set), `iat`, `exp` and `jti`; `claims` win. */
  readonly sign: (claims: Record<string, unknown>) => string;
}

/** A fresh ES256 signing key for `issuer`: tokens last `expiresIn` seconds (default 3600). */
export function createSigner(
  issuer: string,
  options: { readonly audience?: string; readonly expiresIn?: number } = {},
): TestSigner {
  const { audience, expiresIn = 3600 } = options;
  const kid = `conf-${randomUUID().slice(0, 8)}`;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as object), kid, alg: 'ES256', use: 'sig' } as Jwk;
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return {
    jwk,
    sign(claims) {
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        iss: issuer,
        ...(audience === undefined ? {} : { aud: audience }),
        iat: now,
        exp: now + expiresIn,
        jti: randomUUID(),
        ...claims,
      };
      const input = `${b64({ alg: 'ES256', typ: 'JWT', kid })}.${b64(payload)}`;
      const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

/**
 * POSTs a JSON-RPC message (or raw text) to an MCP endpoint as a Streamable HTTP client does (JSON and SSE
 * accepted, protocol version 2025-11-25), with extra `headers` such as `authorization`.
 */
export function post(
  url: string | URL,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** JSON-RPC messages of a response, whether JSON or a (finished) SSE stream. */
export async function messages(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  }
  const value = JSON.parse(text) as unknown;
  return (Array.isArray(value) ? value : [value]) as Record<string, unknown>[];
}

interface Deployment {
  readonly issuer: string;
  readonly authorized: (url: URL) => void;
  readonly url: string;
  readonly origin: string;
  readonly metadataUrl: string;
  readonly token: (claims: Record<string, unknown>) => string;
  readonly sink: MemoryAuditSink;
  readonly mcp: AuthSecMcpServer;
  close(): Promise<void>;
}

/**
 * A minimal authorization server on loopback for the step-up scenario: RFC 8414 metadata, and a token endpoint
 * that issues an analyst token carrying the scope of the last authorization request.
 */
async function startAuthorizationServer(analystToken: (scope: string) => string) {
  let last: URL | undefined;
  const http = createHttpServer((req, res) => {
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    if (req.url === '/.well-known/oauth-authorization-server') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer: base,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/token`,
          response_types_supported: ['code'],
          grant_types_supported: ['authorization_code'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['none'],
        }),
      );
      return;
    }
    if (req.url === '/token' && req.method === 'POST' && last) {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const scope = last?.searchParams.get('scope') ?? '';
        res.end(
          JSON.stringify({ access_token: analystToken(scope), token_type: 'Bearer', expires_in: 600, scope }),
        );
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    issuer: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    authorized: (url: URL) => {
      last = url;
    },
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

async function deploy(start: StartAdapter, stateless: boolean): Promise<Deployment> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const resourceUrl = `${origin}/mcp`;
  let signer: TestSigner | undefined;
  const as = await startAuthorizationServer((scope) => signer!.sign({ ...ANALYST, scope }));
  const ISSUER = as.issuer;
  signer = createSigner(ISSUER, { audience: resourceUrl });
  const sink = new MemoryAuditSink();
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: resourceUrl,
    logger: silentLogger,
    audit: { sinks: [sink] },
  });
  const mcp = createAuthSecServer({
    name: 'conformance',
    version: '1.0.0',
    tools: createSampleTools(),
    authsec,
  });
  const started = await start({
    host: '127.0.0.1',
    port,
    options: {
      server: mcp,
      authsec,
      resourceUrl,
      authorizationServers: [ISSUER],
      stateless,
      insufficientScope: 'http',
      cors: { origins: [CORS_ORIGIN] },
    },
  });
  expect(started.url).toBe(resourceUrl);
  return {
    issuer: ISSUER,
    authorized: as.authorized,
    url: resourceUrl,
    origin,
    metadataUrl: `${origin}/.well-known/oauth-protected-resource/mcp`,
    token: signer.sign,
    sink,
    mcp,
    async close() {
      await started.close();
      await mcp.close();
      await as.close();
    },
  };
}

async function sdkClient(url: string, token: string) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'conformance-client', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

/** Opens a raw session: initialize plus `notifications/initialized`; returns its id (or none when stateless). */
async function openSession(url: string, token: string): Promise<Record<string, string>> {
  const init = await post(url, INITIALIZE, { authorization: `Bearer ${token}` });
  expect(init.status).toBe(200);
  await init.body?.cancel();
  const sessionId = init.headers.get('mcp-session-id');
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (sessionId) headers['mcp-session-id'] = sessionId;
  const initialized = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  expect(initialized.status).toBe(202);
  return headers;
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

/**
 * Defines the conformance suite for one HTTP adapter. `start` gets the port, host and options to use, and must
 * serve MCP at `options.resourceUrl` with the RFC 9728 metadata at the path form and the root form.
 */
export function defineAdapterConformance(name: string, start: StartAdapter): void {
  describe(`${name}: HTTP adapter conformance (stateful)`, () => {
    let d: Deployment;
    let admin: string;
    let analyst: string;
    const closers: (() => Promise<void>)[] = [];
    beforeAll(async () => {
      d = await deploy(start, false);
      admin = d.token(ADMIN);
      analyst = d.token(ANALYST);
    });
    afterAll(async () => {
      await Promise.allSettled(closers.map((close) => close()));
      await d?.close();
    });

    it('serves the protected resource metadata at the path form and the root form', async () => {
      for (const path of [
        '/.well-known/oauth-protected-resource/mcp',
        '/.well-known/oauth-protected-resource',
      ]) {
        const response = await fetch(`${d.origin}${path}`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^application\/json/);
        expect(await response.json()).toEqual({
          resource: d.url,
          authorization_servers: [d.issuer],
          scopes_supported: ['write', 'read', 'admin'],
          bearer_methods_supported: ['header'],
          resource_name: 'conformance',
        });
      }
    });

    it('401 without a token: bare challenge with resource_metadata and scope, no error', async () => {
      const response = await post(d.url, INITIALIZE);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe(
        `Bearer scope="write read admin", resource_metadata="${d.metadataUrl}"`,
      );
      expect(await response.json()).toMatchObject({ code: 'TOKEN_MISSING' });
    });

    it('401 invalid_token for malformed, forged, expired and non-Bearer credentials', async () => {
      const forged = `${admin.slice(0, admin.lastIndexOf('.'))}.${'A'.repeat(86)}`;
      const expired = d.token({ ...ADMIN, exp: Math.floor(Date.now() / 1000) - 3600 });
      const cases: [string, string][] = [
        ['Bearer not-a-jwt', 'TOKEN_INVALID'],
        [`Bearer ${forged}`, 'TOKEN_INVALID'],
        [`Bearer ${expired}`, 'TOKEN_EXPIRED'],
        ['Basic dXNlcjpwYXNz', 'TOKEN_INVALID'],
      ];
      for (const [authorization, code] of cases) {
        const response = await post(d.url, INITIALIZE, { authorization });
        expect(response.status).toBe(401);
        const challenge = response.headers.get('www-authenticate') ?? '';
        expect(challenge).toMatch(/^Bearer error="invalid_token", error_description="[^"]+"/);
        expect(challenge).toContain(`scope="write read admin", resource_metadata="${d.metadataUrl}"`);
        expect(await response.json()).toMatchObject({ code });
      }
    });

    it('401 invalid_token for a token issued for another audience', async () => {
      const other = d.token({ ...ADMIN, aud: 'https://other.example/mcp' });
      const response = await post(d.url, INITIALIZE, { authorization: `Bearer ${other}` });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await response.json()).toMatchObject({ code: 'TOKEN_AUDIENCE' });
    });

    it('401 invalid_token for a token without a valid tenant', async () => {
      const response = await post(d.url, INITIALIZE, {
        authorization: `Bearer ${d.token({ ...ADMIN, tenant_id: 'Not A Tenant!' })}`,
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await response.json()).toMatchObject({ code: 'TENANT_UNKNOWN' });
    });

    it('lists tools per caller (official SDK client): admin and analyst see different tools', async () => {
      const a = await sdkClient(d.url, admin);
      const b = await sdkClient(d.url, analyst);
      closers.push(
        () => a.client.close(),
        () => b.client.close(),
      );
      expect((await a.client.listTools()).tools.map((t) => t.name)).toEqual(ADMIN_TOOLS);
      expect((await b.client.listTools()).tools.map((t) => t.name)).toEqual(ANALYST_TOOLS);
      const hello = (await a.client.callTool({ name: 'hello', arguments: {} })) as {
        content: { text?: string }[];
      };
      expect(hello.content[0]?.text).toBe('Hello, john@company.com!');
    });

    it('refuses a hidden tool on call (isError result, PERMISSION_DENIED), whatever the list showed', async () => {
      const b = await sdkClient(d.url, analyst);
      closers.push(() => b.client.close());
      const result = (await b.client.callTool({ name: 'admin_panel', arguments: {} })) as {
        isError?: boolean;
        _meta?: Record<string, unknown>;
      };
      expect(result.isError).toBe(true);
      expect(result._meta?.['authsec/error']).toMatchObject({ code: 'PERMISSION_DENIED' });
    });

    it('403 insufficient_scope on tools/call, naming every scope needed plus those held', async () => {
      const headers = await openSession(d.url, analyst);
      const response = await post(d.url, call(7, 'create_resource', { name: 'x' }), headers);
      expect(response.status).toBe(403);
      const challenge = response.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer error="insufficient_scope", error_description="[^"]+"/);
      expect(challenge).toContain(`scope="write read", resource_metadata="${d.metadataUrl}"`);
      expect(await response.json()).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
      expect(d.sink.events).toContainEqual(
        expect.objectContaining({
          target: 'create_resource',
          reason: 'INSUFFICIENT_SCOPE',
          subject: 'user-alice',
        }),
      );
      // The same session goes on working for what the token allows.
      const allowed = await post(d.url, call(8, 'view_analytics'), headers);
      expect(allowed.status).toBe(200);
      expect(JSON.stringify(await messages(allowed))).toContain('Analytics of tenant acme-corp');
    });

    it('the official SDK client steps up on 403 insufficient_scope: authorizes with the scopes, then retries', async () => {
      let tokens: OAuthTokens = { access_token: analyst, token_type: 'Bearer' };
      let verifier = '';
      const redirects: URL[] = [];
      const provider: OAuthClientProvider = {
        redirectUrl: 'http://127.0.0.1/callback',
        clientMetadata: { redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' },
        clientInformation: () => ({ client_id: 'conformance-client' }),
        tokens: () => tokens,
        saveTokens: (next) => {
          tokens = next;
        },
        redirectToAuthorization: (url) => {
          redirects.push(url);
          d.authorized(url);
        },
        saveCodeVerifier: (value) => {
          verifier = value;
        },
        codeVerifier: () => verifier,
      };
      const transport = new StreamableHTTPClientTransport(new URL(d.url), { authProvider: provider });
      const client = new Client({ name: 'conformance-step-up', version: '1.0.0' });
      closers.push(() => client.close());
      await client.connect(transport);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(ANALYST_TOOLS);
      // The 403 sends the client to the authorization server with every scope the call needs.
      await expect(client.callTool({ name: 'create_resource', arguments: { name: 'x' } })).rejects.toThrow();
      expect(redirects).toHaveLength(1);
      const authorization = redirects[0]!;
      expect(authorization.origin).toBe(d.issuer);
      expect(authorization.searchParams.get('scope')).toBe('write read');
      expect(authorization.searchParams.get('resource')).toBe(d.url);
      expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
      await transport.finishAuth('step-up-code');
      expect(tokens.scope).toBe('write read');
      const created = (await client.callTool({ name: 'create_resource', arguments: { name: 'x' } })) as {
        content: { text?: string }[];
        isError?: boolean;
      };
      expect(created.isError).toBeUndefined();
      expect(JSON.stringify(created.content)).toContain('created');
    });

    it('binds a session to its subject: another subject presenting the id is refused (404)', async () => {
      const own = await openSession(d.url, admin);
      const sessionId = own['mcp-session-id']!;
      const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
      const stolen = await post(d.url, ping, {
        authorization: `Bearer ${analyst}`,
        'mcp-session-id': sessionId,
      });
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toMatchObject({ error: { code: -32001 } });
      const tokenless = await post(d.url, ping, { 'mcp-session-id': sessionId });
      expect(tokenless.status).toBe(401);
      const ok = await post(d.url, ping, own);
      expect(ok.status).toBe(200);
      expect(await messages(ok)).toEqual([{ jsonrpc: '2.0', id: 2, result: {} }]);
      expect(d.sink.events).toContainEqual(
        expect.objectContaining({ action: 'authenticate', target: 'mcp-session', subject: 'user-alice' }),
      );
    });

    it('403 for a foreign Origin; its own and loopback origins pass', async () => {
      const evil = await post(d.url, INITIALIZE, {
        authorization: `Bearer ${admin}`,
        origin: 'http://evil.example',
      });
      expect(evil.status).toBe(403);
      await evil.body?.cancel();
      for (const origin of [d.origin, d.origin.replace('127.0.0.1', 'localhost')]) {
        const ok = await post(d.url, INITIALIZE, { authorization: `Bearer ${admin}`, origin });
        expect(ok.status).toBe(200);
        await ok.body?.cancel();
      }
    });

    it('CORS: a configured origin is answered and sees WWW-Authenticate and Mcp-Session-Id', async () => {
      const preflight = await fetch(d.url, {
        method: 'OPTIONS',
        headers: {
          origin: CORS_ORIGIN,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, mcp-session-id',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(CORS_ORIGIN);
      expect(preflight.headers.get('access-control-allow-headers')).toContain('Authorization');
      const refused = await post(d.url, INITIALIZE, { origin: CORS_ORIGIN });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-allow-origin')).toBe(CORS_ORIGIN);
      expect(refused.headers.get('access-control-expose-headers')).toBe('WWW-Authenticate, Mcp-Session-Id');
    });

    it('400 JSON-RPC parse error for malformed JSON', async () => {
      const response = await post(d.url, '{"jsonrpc": "2.0", ', { authorization: `Bearer ${admin}` });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null });
    });

    it('413 for a body over 1 MiB, declared or streamed', async () => {
      const big = JSON.stringify({ ...INITIALIZE, padding: 'x'.repeat(1024 * 1024) });
      const declared = await post(d.url, big, { authorization: `Bearer ${admin}` });
      expect(declared.status).toBe(413);
      const streamed = await new Promise<number>((resolve, reject) => {
        const req = request(
          d.url,
          {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              authorization: `Bearer ${admin}`,
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
      expect(streamed).toBe(413);
    });

    // What happens with JSON-RPC batches (removed from MCP in 2025-06-18; SDK 1.32.2 still accepts arrays):
    // a batch is authenticated once, each call in it is authorized on its own, and a batch holding a
    // tools/call that more scopes would allow is refused as a whole with the 403 step-up, merged scopes.
    it('JSON-RPC batches: answered message by message; a step-up call refuses the whole batch with 403', async () => {
      const headers = await openSession(d.url, analyst);
      const batch = await post(
        d.url,
        [{ jsonrpc: '2.0', id: 11, method: 'ping' }, call(12, 'hello'), call(13, 'admin_panel')],
        headers,
      );
      expect(batch.status).toBe(200);
      const answers = await messages(batch);
      const byId = new Map(answers.map((m) => [m.id, m]));
      expect(byId.get(11)).toMatchObject({ result: {} });
      expect(JSON.stringify(byId.get(12))).toContain('Hello, alice@company.com!');
      expect(byId.get(13)).toMatchObject({ result: { isError: true } });
      const stepUp = await post(d.url, [call(14, 'hello'), call(15, 'create_resource')], headers);
      expect(stepUp.status).toBe(403);
      expect(stepUp.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(stepUp.headers.get('www-authenticate')).toContain('scope="write read"');
    });
  });

  describe(`${name}: HTTP adapter conformance (stateless)`, () => {
    let d: Deployment;
    beforeAll(async () => {
      d = await deploy(start, true);
    });
    afterAll(() => d?.close());

    it('lists per caller with no session, and still steps up with 403', async () => {
      const a = await sdkClient(d.url, d.token(ADMIN));
      const b = await sdkClient(d.url, d.token(ANALYST));
      try {
        expect(a.transport.sessionId).toBeUndefined();
        expect((await a.client.listTools()).tools.map((t) => t.name)).toEqual(ADMIN_TOOLS);
        expect((await b.client.listTools()).tools.map((t) => t.name)).toEqual(ANALYST_TOOLS);
      } finally {
        await a.client.close();
        await b.client.close();
      }
      const stepUp = await post(d.url, call(3, 'create_resource'), {
        authorization: `Bearer ${d.token(ANALYST)}`,
      });
      expect(stepUp.status).toBe(403);
      expect(stepUp.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    });
  });
}
