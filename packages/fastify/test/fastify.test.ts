import { createSigner } from '@authsec/adapter-conformance';
import {
  AuthSecError,
  type AuthSecOptions,
  createAuthSec,
  createResourceServer,
  type ResourceServer,
  silentLogger,
} from '@authsec/core';
import { createAuthSecServer } from '@authsec/mcp';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { authSecMetadataPlugin, authSecPlugin, requireAuthSec } from '../src/index.js';

const ISSUER = 'https://idp.fastify.example';
const RESOURCE = 'https://api.example/mcp';
const signer = createSigner(ISSUER, { audience: RESOURCE, expiresIn: 600 });
const token = signer.sign;

function engine(options: Partial<AuthSecOptions> = {}) {
  return createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: RESOURCE,
    logger: silentLogger,
    ...options,
  });
}

function resourceServer(options: Partial<AuthSecOptions> = {}): ResourceServer {
  return createResourceServer({
    authsec: engine(options),
    resourceUrl: RESOURCE,
    authorizationServers: [ISSUER],
    scopesSupported: ['read'],
  });
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function guarded(rs: ResourceServer): FastifyInstance {
  const app = Fastify();
  apps.push(app);
  app.register(authSecMetadataPlugin, { resourceServer: rs });
  app.get('/api/me', { onRequest: requireAuthSec(rs) }, async (request) => ({
    auth: request.auth,
    subject: request.auth?.extra.principal.subject,
  }));
  return app;
}

describe('requireAuthSec', () => {
  it('sets request.auth in the SDK AuthInfo shape for a valid token', async () => {
    const app = guarded(resourceServer());
    const raw = token({ sub: 'u1', tenant_id: 'acme-corp', scope: 'read' });
    const response = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${raw}` } });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { auth: Record<string, unknown>; subject: string };
    expect(body.subject).toBe('u1');
    expect(body.auth).toMatchObject({ token: raw, clientId: '', scopes: ['read'], resource: RESOURCE });
    expect(typeof body.auth.expiresAt).toBe('number');
  });

  it('answers 401 challenges (never a 500) for missing and bad tokens', async () => {
    const app = guarded(resourceServer());
    const missing = await app.inject({ url: '/api/me' });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe(
      'Bearer scope="read", resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp"',
    );
    expect(missing.json()).toMatchObject({ code: 'TOKEN_MISSING' });
    for (const authorization of ['Bearer x.y.z', 'Bearer %%%', 'Basic abc', `Bearer ${'a'.repeat(9_000)}`]) {
      const bad = await app.inject({ url: '/api/me', headers: { authorization } });
      expect(bad.statusCode).toBe(401);
      expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    }
  });

  it('answers 503 without details when a dependency is down, and rejects bad input at creation', async () => {
    const down = resourceServer({
      directory: {
        resolve: async () => {
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'pg at 10.1.2.3 refused');
        },
      },
    });
    const response = await guarded(down).inject({
      url: '/api/me',
      headers: { authorization: `Bearer ${token({ sub: 'u1', tenant_id: 'acme-corp' })}` },
    });
    expect(response.statusCode).toBe(503);
    expect(response.body).not.toContain('10.1.2.3');
    expect(() =>
      requireAuthSec({ authsec: undefined as never, resourceUrl: RESOURCE, authorizationServers: [] }),
    ).toThrow(TypeError);
  });
});

describe('authSecMetadataPlugin', () => {
  it('serves the document at both forms, HEAD included', async () => {
    const app = guarded(resourceServer());
    for (const url of [
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]) {
      const response = await app.inject({ url });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ resource: RESOURCE, scopes_supported: ['read'] });
      expect((await app.inject({ url, method: 'HEAD' })).statusCode).toBe(200);
      expect((await app.inject({ url, method: 'POST', payload: '{' })).statusCode).toBe(405);
    }
  });
});

describe('authSecPlugin', () => {
  async function mcpApp(): Promise<FastifyInstance> {
    const authsec = engine();
    const server = createAuthSecServer({ name: 'unit', version: '1.0.0', tools: [], authsec });
    const app = Fastify();
    apps.push(app);
    await app.register(authSecPlugin, {
      server,
      authsec,
      resourceUrl: RESOURCE,
      authorizationServers: [ISSUER],
    });
    app.get('/api/me', { onRequest: app.authsec.requireAuth }, async (request) => ({
      subject: request.auth?.extra.principal.subject,
    }));
    app.post('/api/echo', async (request) => request.body);
    return app;
  }

  it('decorates fastify.authsec and request.auth, and guards ordinary routes with its hook', async () => {
    const app = await mcpApp();
    expect(app.hasDecorator('authsec')).toBe(true);
    expect(app.hasRequestDecorator('auth')).toBe(true);
    expect(app.authsec.resourceServer.resourceUrl).toBe(RESOURCE);
    expect(app.authsec.sessionCount).toBe(0);
    expect((await app.inject({ url: '/api/me' })).statusCode).toBe(401);
    const ok = await app.inject({
      url: '/api/me',
      headers: { authorization: `Bearer ${token({ sub: 'u2', tenant_id: 'acme-corp' })}` },
    });
    expect(ok.json()).toEqual({ subject: 'u2' });
  });

  it('serves health, and leaves the application JSON parser alone outside the MCP routes', async () => {
    const app = await mcpApp();
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ url: '/readyz' })).json()).toMatchObject({ status: 'ready' });
    const echo = await app.inject({ url: '/api/echo', method: 'POST', payload: { a: 1 } });
    expect(echo.json()).toEqual({ a: 1 });
  });

  it('closes MCP sessions, open GET streams included, when Fastify closes', async () => {
    const authsec = engine();
    const server = createAuthSecServer({ name: 'unit', version: '1.0.0', tools: [], authsec });
    const app = Fastify();
    const resourceUrl = 'http://127.0.0.1/mcp';
    await app.register(authSecPlugin, {
      server,
      authsec,
      resourceUrl,
      authorizationServers: [ISSUER],
      allowToolLogin: true,
    });
    const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/mcp`;
    const initialize = {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'c', version: '1' },
    };
    const init = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: initialize }),
    });
    expect(init.status).toBe(200);
    await init.text();
    const stream = await fetch(url, {
      headers: { accept: 'text/event-stream', 'mcp-session-id': init.headers.get('mcp-session-id')! },
    });
    expect(stream.status).toBe(200);
    expect(app.authsec.sessionCount).toBe(1);
    await app.close();
    expect(app.authsec.sessionCount).toBe(0);
  });

  it('rejects a server that does not come from createAuthSecServer at register', async () => {
    const app = Fastify();
    apps.push(app);
    app.register(authSecPlugin, {
      server: {} as never,
      authsec: engine(),
      resourceUrl: RESOURCE,
      authorizationServers: [ISSUER],
    });
    await expect(app.ready()).rejects.toThrow(TypeError);
  });
});
