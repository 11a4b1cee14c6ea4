import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSigner } from '@authsec/adapter-conformance';
import {
  AuthSecError,
  type AuthSecOptions,
  createAuthSec,
  createResourceServer,
  type ResourceServer,
  silentLogger,
} from '@authsec/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { authSecMetadataRouter, requireAuthSec } from '../src/index.js';

const ISSUER = 'https://idp.express.example';
const RESOURCE = 'https://api.example/mcp';
const signer = createSigner(ISSUER, { audience: RESOURCE, expiresIn: 600 });
const token = signer.sign;

function resourceServer(engine: Partial<AuthSecOptions> = {}): ResourceServer {
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: RESOURCE,
    logger: silentLogger,
    ...engine,
  });
  return createResourceServer({
    authsec,
    resourceUrl: RESOURCE,
    authorizationServers: [ISSUER],
    scopesSupported: ['read'],
  });
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function serve(rs: ResourceServer): Promise<string> {
  const app = express();
  app.use(authSecMetadataRouter(rs));
  app.post('/api/write', requireAuthSec(rs, { scopes: ['write'] }), (_req, res) => {
    res.json({ written: true });
  });
  app.get('/api/me', requireAuthSec(rs), (req, res) => {
    res.json({
      auth: req.auth,
      subject: (req.auth?.extra?.principal as { subject: string } | undefined)?.subject,
    });
  });
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('requireAuthSec', () => {
  it('sets req.auth in the SDK AuthInfo shape for a valid token', async () => {
    const base = await serve(resourceServer());
    const raw = token({ sub: 'u1', tenant_id: 'acme-corp', scope: 'read' });
    const response = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${raw}` } });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { auth: Record<string, unknown>; subject: string };
    expect(body.subject).toBe('u1');
    expect(body.auth).toMatchObject({ token: raw, clientId: '', scopes: ['read'], resource: RESOURCE });
    expect(typeof body.auth.expiresAt).toBe('number');
  });

  it('answers 401 challenges (never a 500) for missing and bad tokens', async () => {
    const base = await serve(resourceServer());
    const missing = await fetch(`${base}/api/me`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe(
      'Bearer scope="read", resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp"',
    );
    for (const authorization of ['Bearer x.y.z', 'Bearer %%%', 'Basic abc', `Bearer ${'a'.repeat(9_000)}`]) {
      const bad = await fetch(`${base}/api/me`, { headers: { authorization } });
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
  });

  it('answers 503 without details when a dependency is down, and accepts options instead of a server', async () => {
    const down = resourceServer({
      directory: {
        resolve: async () => {
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'pg at 10.1.2.3 refused');
        },
      },
    });
    const base = await serve(down);
    const response = await fetch(`${base}/api/me`, {
      headers: { authorization: `Bearer ${token({ sub: 'u1', tenant_id: 'acme-corp' })}` },
    });
    expect(response.status).toBe(503);
    expect(await response.text()).not.toContain('10.1.2.3');
    expect(() =>
      requireAuthSec({ authsec: undefined as never, resourceUrl: RESOURCE, authorizationServers: [] }),
    ).toThrow(TypeError);
  });
});

describe('requireAuthSec with a requirement', () => {
  it('answers 403 insufficient_scope naming the scope to get, and passes a caller who holds it', async () => {
    const base = await serve(resourceServer());
    const call = (scope: string) =>
      fetch(`${base}/api/write`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token({ sub: 'u1', tenant_id: 'acme-corp', scope })}` },
      });
    const refused = await call('read');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toMatch(/error="insufficient_scope".*scope="[^"]*write/);
    expect(((await refused.json()) as { code: string }).code).toBe('INSUFFICIENT_SCOPE');
    const allowed = await call('read write');
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ written: true });
  });
});

describe('authSecMetadataRouter', () => {
  it('serves the document at both forms', async () => {
    const base = await serve(resourceServer());
    for (const path of [
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]) {
      const response = await fetch(`${base}${path}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ resource: RESOURCE, scopes_supported: ['read'] });
    }
  });
});
