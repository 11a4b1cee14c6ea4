/**
 * The shared HTTP adapter conformance suite for the MCP SDK v2 line: written once, run against every AuthSec
 * HTTP adapter's v2 entry (node:http, Express, Fastify, NestJS on both platforms), in both protocol eras: the
 * v2 client pinned to 2026-07-28 (stateless, the `_meta` envelope) and the same client negotiating the 2025
 * legacy era (sessions). Every adapter mounts one application hook of its framework that sets
 * {@link APP_HOOK_HEADER} on every response, the way helmet, CORS plugins and rate limiters set theirs: the
 * suite asserts it on the MCP, metadata and health answers, so an adapter that reorders or skips the
 * application's middleware fails here.
 *
 * @packageDocumentation
 */

import { createAuthSec, MemoryAuditSink, silentLogger } from '@authsec/core';
import { type ProtectedMcpServer, protect } from '@authsec/mcp/v2';
import { declareTools } from '@authsec/mcp/v2/tools';
import { createSampleTools } from '@authsec/sample-tools';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  CORS_ORIGIN,
  createSigner,
  freePort,
  messages,
  post,
} from './index.js';
import { attempt, closeAll, connect, ERAS, type Era } from './v2-fixture.js';

export * from './v2-fixture.js';

/** The header every adapter's application hook sets (`x-app-hook: 1`). */
export const APP_HOOK_HEADER = 'x-app-hook';

/** The options every adapter's v2 MCP entry point accepts; pass them through unchanged. */
export interface AdapterV2Options {
  readonly server: ProtectedMcpServer;
  readonly authsec: ReturnType<typeof createAuthSec>;
  readonly resourceUrl: string;
  readonly authorizationServers: readonly string[];
  readonly cors: { readonly origins: readonly string[] };
}

/** What the suite hands to an adapter's `start`. */
export interface AdapterV2Context {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly options: AdapterV2Options;
}

/** A running adapter: its MCP URL (must equal `options.resourceUrl`) and how to stop it. */
export interface StartedV2Adapter {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts an adapter: the application hook ({@link APP_HOOK_HEADER}) mounted the framework's way first, then
 * AuthSec's v2 entry with `options`, listening on `host:port`.
 */
export type StartV2Adapter = (ctx: AdapterV2Context) => Promise<StartedV2Adapter>;

const MODERN = '2026-07-28';

/** A 2026-07-28 request: the `_meta` envelope, and the `Mcp-Method` / `Mcp-Name` headers. */
function modern(
  method: string,
  params: Record<string, unknown> = {},
  id = 1,
): { headers: Record<string, string>; body: Record<string, unknown> } {
  const headers: Record<string, string> = { 'mcp-protocol-version': MODERN, 'mcp-method': method };
  if (typeof params.name === 'string') headers['mcp-name'] = params.name;
  return {
    headers,
    body: {
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientInfo': { name: 'conformance-v2', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    },
  };
}

/**
 * The REST routes an adapter mounts for the suite's REST part, each guarded the framework's way with the
 * requirement named here, answering `{ subject, scopes }` from the verified caller (`auth.extra.principal`,
 * `auth.scopes`).
 */
export const REST_ROUTES = Object.freeze({
  /** `GET /api/me`: any valid token. */
  me: { method: 'GET', path: '/api/me', requirement: undefined },
  /** `POST /api/resources`: scope `write`. */
  write: { method: 'POST', path: '/api/resources', requirement: Object.freeze({ scopes: ['write'] }) },
  /** `GET /api/admin`: role `admin`. */
  admin: { method: 'GET', path: '/api/admin', requirement: Object.freeze({ roles: ['admin'] }) },
} as const);

/** What a guarded REST route answers (see {@link REST_ROUTES}). */
export const restAnswer = (
  auth: { scopes: readonly string[]; extra: { principal: { subject: string } } } | undefined,
) => ({
  subject: auth?.extra.principal.subject,
  scopes: auth?.scopes,
});

/** Options of {@link defineAdapterConformanceV2}. */
export interface ConformanceV2Options {
  /** The adapter mounts {@link REST_ROUTES} with its route guard: run the REST part. Default `false`. */
  readonly rest?: boolean;
}

/** Defines the v2 conformance suite for one HTTP adapter. */
export function defineAdapterConformanceV2(
  name: string,
  start: StartV2Adapter,
  suiteOptions: ConformanceV2Options = {},
): void {
  describe(`${name}: HTTP adapter conformance on the v2 SDK`, () => {
    let url: string;
    let origin: string;
    let metadataUrl: string;
    let issuer: string;
    let token: (claims: Record<string, unknown>) => string;
    let sink: MemoryAuditSink;
    let started: StartedV2Adapter;

    beforeAll(async () => {
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      url = `${origin}/mcp`;
      metadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;
      issuer = 'https://idp.conformance-v2.example';
      const signer = createSigner(issuer, { audience: url });
      token = signer.sign;
      sink = new MemoryAuditSink();
      const authsec = createAuthSec({
        issuers: [{ issuer, keys: [signer.jwk] }],
        audience: url,
        logger: silentLogger,
        audit: { sinks: [sink] },
      });
      const server = protect(authsec, { name: 'conformance', version: '1.0.0' });
      declareTools(server, createSampleTools());
      started = await start({
        host: '127.0.0.1',
        port,
        options: {
          server,
          authsec,
          resourceUrl: url,
          authorizationServers: [issuer],
          cors: { origins: [CORS_ORIGIN] },
        },
      });
      expect(started.url).toBe(url);
    });
    afterAll(async () => {
      await closeAll();
      await started?.close();
    });

    const client = (claims: Record<string, unknown>, era: Era, seen?: Headers[]) =>
      connect(url, token(claims), era, seen);

    for (const era of ERAS) {
      it(`${era} era: lists exactly each caller's tools, the application's hook on every answer`, async () => {
        const seen: Headers[] = [];
        const admin = await client(ADMIN, era, seen);
        const analyst = await client(ANALYST, era, seen);
        expect((await admin.listTools()).tools.map((t) => t.name)).toEqual(ADMIN_TOOLS);
        expect((await analyst.listTools()).tools.map((t) => t.name)).toEqual(ANALYST_TOOLS);
        const hello = (await admin.callTool({ name: 'hello', arguments: {} })) as {
          content: { text?: string }[];
        };
        expect(hello.content[0]?.text).toBe('Hello, john@company.com!');
        expect(seen.length).toBeGreaterThan(3);
        for (const headers of seen) expect(headers.get(APP_HOOK_HEADER)).toBe('1');
      });

      it(`${era} era: a hidden tool answers exactly as an unknown one, and its call is audited as denied`, async () => {
        const analyst = await client(ANALYST, era);
        expect(await attempt(analyst, 'admin_panel')).toBe(await attempt(analyst, 'no_such_tool'));
        expect(sink.events).toContainEqual(
          expect.objectContaining({ target: 'admin_panel', decision: 'deny', subject: 'user-alice' }),
        );
      });
    }

    it('2026-07-28: 403 insufficient_scope on a call that more scopes allow, naming them; no session id', async () => {
      const { headers, body } = modern('tools/call', { name: 'create_resource', arguments: { name: 'x' } });
      const refused = await post(url, body, { ...headers, authorization: `Bearer ${token(ANALYST)}` });
      expect(refused.status).toBe(403);
      const challenge = refused.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer error="insufficient_scope", error_description="[^"]+"/);
      expect(challenge).toContain(`scope="write read", resource_metadata="${metadataUrl}"`);
      expect(refused.headers.get(APP_HOOK_HEADER)).toBe('1');
      expect(await refused.json()).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
      const list = modern('tools/list');
      const listed = await post(url, list.body, {
        ...list.headers,
        authorization: `Bearer ${token(ANALYST)}`,
      });
      expect(listed.status).toBe(200);
      expect(listed.headers.get('mcp-session-id')).toBeNull();
      const [answer] = await messages(listed);
      expect((answer as { result: { cacheScope?: string } }).result.cacheScope).toBe('private');
    });

    it('2026-07-28: an Mcp-Method header that disagrees with the body is a 400 (-32020)', async () => {
      const { headers, body } = modern('tools/list');
      const response = await post(url, body, {
        ...headers,
        'mcp-method': 'tools/call',
        authorization: `Bearer ${token(ADMIN)}`,
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: -32020 } });
    });

    it('2025 era: 403 insufficient_scope inside a session, which goes on serving what the token allows', async () => {
      const auth = { authorization: `Bearer ${token(ANALYST)}` };
      const init = await post(
        url,
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'raw', version: '1' },
          },
        },
        auth,
      );
      expect(init.status).toBe(200);
      await init.body?.cancel();
      const session = { ...auth, 'mcp-session-id': init.headers.get('mcp-session-id') ?? '' };
      expect(session['mcp-session-id']).toMatch(/.+/);
      const call = (id: number, tool: string) => ({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: tool, arguments: {} },
      });
      const refused = await post(url, call(2, 'create_resource'), session);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('www-authenticate')).toContain('scope="write read"');
      expect(await refused.json()).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
      const allowed = await post(url, call(3, 'view_analytics'), session);
      expect(allowed.status).toBe(200);
      expect(JSON.stringify(await messages(allowed))).toContain('Analytics of tenant acme-corp');
      // The session is its subject's: another caller presenting its id is refused.
      const stolen = await post(
        url,
        { jsonrpc: '2.0', id: 4, method: 'ping' },
        {
          ...session,
          authorization: `Bearer ${token(ADMIN)}`,
        },
      );
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toMatchObject({ error: { code: -32001 } });
    });

    it('401 without a token: the bare challenge naming the metadata, the body naming TOKEN_MISSING', async () => {
      for (const { headers, body } of [
        modern('tools/list'),
        { headers: {}, body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} } },
      ]) {
        const response = await post(url, body, headers);
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe(
          `Bearer scope="write read admin", resource_metadata="${metadataUrl}"`,
        );
        expect(response.headers.get(APP_HOOK_HEADER)).toBe('1');
        expect(await response.json()).toMatchObject({ code: 'TOKEN_MISSING' });
      }
    });

    it('401 invalid_token, with its code, for forged, expired, foreign-audience and tenantless tokens', async () => {
      const admin = token(ADMIN);
      const cases: [string, string][] = [
        ['Bearer not-a-jwt', 'TOKEN_INVALID'],
        [`Bearer ${admin.slice(0, admin.lastIndexOf('.'))}.${'A'.repeat(86)}`, 'TOKEN_INVALID'],
        [`Bearer ${token({ ...ADMIN, exp: Math.floor(Date.now() / 1000) - 3600 })}`, 'TOKEN_EXPIRED'],
        [`Bearer ${token({ ...ADMIN, aud: 'https://other.example/mcp' })}`, 'TOKEN_AUDIENCE'],
        [`Bearer ${token({ ...ADMIN, tenant_id: 'Not A Tenant!' })}`, 'TENANT_UNKNOWN'],
      ];
      for (const [authorization, code] of cases) {
        const { headers, body } = modern('tools/list');
        const response = await post(url, body, { ...headers, authorization });
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
        expect(await response.json()).toMatchObject({ code });
      }
    });

    it('serves the metadata (path and root form) and health, with the application hook', async () => {
      for (const path of [
        '/.well-known/oauth-protected-resource/mcp',
        '/.well-known/oauth-protected-resource',
      ]) {
        const response = await fetch(`${origin}${path}`);
        expect(response.status).toBe(200);
        expect(response.headers.get(APP_HOOK_HEADER)).toBe('1');
        expect(await response.json()).toMatchObject({ resource: url, authorization_servers: [issuer] });
      }
      const health = await fetch(`${origin}/healthz`);
      expect(health.status).toBe(200);
      expect(health.headers.get(APP_HOOK_HEADER)).toBe('1');
      await health.body?.cancel();
    });

    it('403 for a foreign Origin; CORS answers a configured origin and exposes WWW-Authenticate', async () => {
      const { headers, body } = modern('tools/list');
      const evil = await post(url, body, {
        ...headers,
        authorization: `Bearer ${token(ADMIN)}`,
        origin: 'http://evil.example',
      });
      expect(evil.status).toBe(403);
      await evil.body?.cancel();
      const preflight = await fetch(url, {
        method: 'OPTIONS',
        headers: {
          origin: CORS_ORIGIN,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, mcp-method',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(CORS_ORIGIN);
      const refused = await post(url, body, { ...headers, origin: CORS_ORIGIN });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-expose-headers')).toContain('WWW-Authenticate');
    });

    it('400 JSON-RPC parse error for malformed JSON; 413 for a body over 1 MiB', async () => {
      const auth = { authorization: `Bearer ${token(ADMIN)}` };
      const malformed = await post(url, '{"jsonrpc": "2.0", ', auth);
      expect(malformed.status).toBe(400);
      expect(await malformed.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null });
      const { headers, body } = modern('tools/list');
      const big = await post(url, JSON.stringify({ ...body, padding: 'x'.repeat(1024 * 1024) }), {
        ...headers,
        ...auth,
      });
      expect(big.status).toBe(413);
      await big.body?.cancel();
    });

    // Registered only where the adapter has REST routes (node:http has none), so nothing is skipped silently.
    if (suiteOptions.rest === true)
      describe('REST routes behind the route guard', () => {
        const rest = (route: keyof typeof REST_ROUTES, headers: Record<string, string> = {}, query = '') =>
          fetch(`${origin}${REST_ROUTES[route].path}${query}`, {
            method: REST_ROUTES[route].method,
            headers,
          });

        it('sets the verified caller for a valid token, with the application hook', async () => {
          const me = await rest('me', { authorization: `Bearer ${token(ANALYST)}` });
          expect(me.status).toBe(200);
          expect(me.headers.get(APP_HOOK_HEADER)).toBe('1');
          expect(await me.json()).toEqual({ subject: ANALYST.sub, scopes: ['read'] });
          const writer = await rest('write', {
            authorization: `Bearer ${token({ ...ANALYST, scope: 'write' })}`,
          });
          expect(writer.status).toBe(200);
          expect(await writer.json()).toEqual({ subject: ANALYST.sub, scopes: ['write'] });
        });

        it('401 with the same challenges as MCP: no token, an expired one', async () => {
          const none = await rest('me');
          expect(none.status).toBe(401);
          expect(none.headers.get('www-authenticate')).toBe(
            `Bearer scope="write read admin", resource_metadata="${metadataUrl}"`,
          );
          expect(await none.json()).toMatchObject({ code: 'TOKEN_MISSING' });
          const expired = await rest('me', {
            authorization: `Bearer ${token({ ...ADMIN, exp: Math.floor(Date.now() / 1000) - 3600 })}`,
          });
          expect(expired.status).toBe(401);
          expect(expired.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
          expect(await expired.json()).toMatchObject({ code: 'TOKEN_EXPIRED' });
        });

        it('403 insufficient_scope naming the scope, 403 without a challenge for a role; audited without the query', async () => {
          const analyst = { authorization: `Bearer ${token(ANALYST)}` };
          const scope = await rest('write', analyst, '?secret=1');
          expect(scope.status).toBe(403);
          expect(scope.headers.get('www-authenticate')).toMatch(
            /error="insufficient_scope".*scope="[^"]*write/,
          );
          expect(await scope.json()).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
          expect(sink.events).toContainEqual(
            expect.objectContaining({
              action: 'route.access',
              target: 'POST /api/resources',
              decision: 'deny',
              reason: 'INSUFFICIENT_SCOPE',
            }),
          );
          expect(JSON.stringify(sink.events)).not.toContain('secret=1');
          const role = await rest('admin', analyst);
          expect(role.status).toBe(403);
          expect(role.headers.get('www-authenticate')).toBeNull();
          expect(await role.json()).toMatchObject({ code: 'PERMISSION_DENIED' });
          const admin = await rest('admin', { authorization: `Bearer ${token(ADMIN)}` });
          expect(admin.status).toBe(200);
          expect(sink.events).toContainEqual(
            expect.objectContaining({ action: 'route.access', target: 'GET /api/admin', decision: 'allow' }),
          );
        });
      });
  });
}
