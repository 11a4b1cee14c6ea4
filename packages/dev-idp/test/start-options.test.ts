import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import {
  DEMO_USERS,
  DEMO_USERS_FILE,
  deriveSubject,
  isDevIdpError,
  loadUsersFile,
  resolveDevUsers,
  startDevIdp,
} from '../src/index.js';
import { authorize, tokenRequest, verifyAccessToken } from './helpers/flows.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dev-idp-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('where it may run', () => {
  it('refuses NODE_ENV=production, from options.env or process.env, even with allowNonLoopback', async () => {
    await expect(startDevIdp({ env: { NODE_ENV: 'production' } })).rejects.toMatchObject({
      code: 'PRODUCTION_REFUSED',
    });
    vi.stubEnv('NODE_ENV', 'production');
    try {
      await expect(startDevIdp({ host: '0.0.0.0', allowNonLoopback: true })).rejects.toMatchObject({
        code: 'PRODUCTION_REFUSED',
      });
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('refuses a non-loopback host unless allowNonLoopback is set', async () => {
    const error = await startDevIdp({ host: '0.0.0.0' }).catch((caught: unknown) => caught);
    expect(isDevIdpError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'NON_LOOPBACK_HOST' });
    await expect(startDevIdp({ host: '192.168.1.10' })).rejects.toMatchObject({ code: 'NON_LOOPBACK_HOST' });
  });

  it('binds IPv6 loopback', async () => {
    const idp = await startDevIdp({ host: '::1' });
    try {
      expect(idp.issuer).toMatch(/^http:\/\/\[::1\]:\d+$/);
      expect((await fetch(`${idp.url}/.well-known/openid-configuration`)).status).toBe(200);
    } finally {
      await idp.close();
    }
  });

  it('checks its options', async () => {
    await expect(startDevIdp({ port: 70000 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(startDevIdp({ accessTokenTtlSeconds: 0 })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    });
    await expect(startDevIdp({ issuer: 'http://localhost:4000/idp' })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    });
    await expect(startDevIdp({ users: [], usersFile: DEMO_USERS_FILE })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    });
    const badTenant = await startDevIdp({
      clients: [{ client_id: 'svc', client_secret: 'x'.repeat(32), tenant_id: 'Not A Tenant' }],
    }).catch((error: unknown) => error);
    expect(badTenant).toMatchObject({ code: 'INVALID_OPTIONS' });
    expect(String((badTenant as Error).message)).toMatch(/client svc: tenant_id must match/);
    await expect(
      startDevIdp({ clients: [{ client_id: 'web', token_endpoint_auth_method: 'none' }] }),
    ).rejects.toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringMatching(/redirect_uris/) });
  });
});

describe('users', () => {
  it('ships the demo users of tenant acme-corp', () => {
    const [admin, analyst] = DEMO_USERS;
    expect(admin).toMatchObject({
      email: 'admin@acme-corp.example',
      password: 'admin-password',
      tenant_id: 'acme-corp',
      roles: ['admin', 'developer'],
      groups: ['engineering', 'security-team'],
      scopes: ['read', 'write', 'admin'],
      resources: ['projects', 'analytics', 'production', 'sensitive-data'],
    });
    expect(analyst).toMatchObject({
      email: 'analyst@acme-corp.example',
      password: 'analyst-password',
      roles: ['analyst'],
      groups: [],
      scopes: ['read'],
      resources: ['analytics'],
    });
    expect(admin?.sub).toBe(deriveSubject('admin@acme-corp.example'));
  });

  it('derives a stable sub from the email, ignoring case', () => {
    expect(deriveSubject('Admin@Acme-Corp.example')).toBe(deriveSubject('admin@acme-corp.example'));
    expect(deriveSubject('a@x.example')).not.toBe(deriveSubject('b@x.example'));
    expect(deriveSubject('a@x.example')).toMatch(/^dev-[0-9a-f]{24}$/);
  });

  it('refuses malformed users, naming the user and field', () => {
    const bad = (users: unknown[]) => () => resolveDevUsers(users);
    expect(bad([{ email: 'a@x', password: 'p' }])).toThrow(/users\[0\]: "tenant_id" is required/);
    expect(bad([{ email: 'a@x', password: 'p', tenant_id: 'Acme Corp' }])).toThrow(/tenant_id/);
    expect(bad([{ email: 'a@x', password: 'p', tenant_id: 't', roles: 'admin' }])).toThrow(/"roles"/);
    expect(
      bad([
        { email: 'a@x', password: 'p', tenant_id: 't' },
        { email: 'A@x', password: 'q', tenant_id: 't' },
      ]),
    ).toThrow(/users\[1\]: duplicate email/);
    try {
      resolveDevUsers([{}]);
    } catch (error) {
      expect(error).toMatchObject({ code: 'INVALID_USERS' });
    }
  });

  it('loads a users file and signs its users in', async () => {
    const file = join(dir, 'users.json');
    await writeFile(
      file,
      JSON.stringify([
        {
          sub: 'user-1',
          email: 'dev@globex.example',
          password: 'pw',
          tenant_id: 'globex',
          roles: ['manager'],
          scopes: ['read', 'reports'],
        },
      ]),
    );
    const idp = await startDevIdp({ usersFile: file });
    try {
      expect(idp.users.map((user) => user.sub)).toEqual(['user-1']);
      const resource = 'http://localhost:9999/mcp';
      const flow = await authorize(idp, {
        clientId: 'authsec-dev',
        redirectUri: 'http://localhost:3333/callback',
        resource,
        scope: 'reports write',
        login: 'DEV@globex.example',
        password: 'pw',
      });
      const { body } = await tokenRequest(idp, {
        grant_type: 'authorization_code',
        client_id: 'authsec-dev',
        code: String(flow.location?.searchParams.get('code')),
        code_verifier: flow.verifier,
        redirect_uri: 'http://localhost:3333/callback',
      });
      const { payload } = await verifyAccessToken(idp, body.access_token, resource);
      expect(payload).toMatchObject({
        sub: 'user-1',
        tenant_id: 'globex',
        roles: ['manager'],
        scope: 'reports',
      });
    } finally {
      await idp.close();
    }
  });

  it('refuses a missing or malformed users file', async () => {
    await expect(loadUsersFile(join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'INVALID_USERS' });
    const file = join(dir, 'broken.json');
    await writeFile(file, '{ not json');
    await expect(startDevIdp({ usersFile: file })).rejects.toMatchObject({ code: 'INVALID_USERS' });
  });
});

describe('issuer, keys and resources', () => {
  it('uses a given issuer for iss and metadata, whatever address it listens on', async () => {
    const idp = await startDevIdp({ issuer: 'http://idp.localhost:4321/' });
    try {
      expect(idp.issuer).toBe('http://idp.localhost:4321');
      expect(idp.url).not.toBe(idp.issuer);
      const metadata = (await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json()) as Record<
        string,
        unknown
      >;
      expect(metadata.issuer).toBe('http://idp.localhost:4321');
      // Endpoints follow the host the request used (oidc-provider builds them from the request URL).
      expect(metadata.token_endpoint).toBe(`${idp.url}/token`);
      const token = await idp.issueToken('analyst@acme-corp.example', { audience: 'urn:x' });
      expect(decodeJwt(token).iss).toBe('http://idp.localhost:4321');
    } finally {
      await idp.close();
    }
  });

  it('signs with a given ES256 key, and refuses a set without one', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'my-key' };
    const idp = await startDevIdp({ jwks: { keys: [jwk] } });
    try {
      const jwks = (await (await fetch(idp.jwksUrl)).json()) as { keys: Array<{ kid: string; d?: string }> };
      expect(jwks.keys.map((key) => key.kid)).toEqual(['my-key']);
      expect(jwks.keys[0]?.d).toBeUndefined();
      const token = await idp.issueToken('admin@acme-corp.example', { audience: 'urn:x' });
      await verifyAccessToken(idp, token, 'urn:x');
    } finally {
      await idp.close();
    }
    const rsa = await generateKeyPair('RS256', { extractable: true });
    await expect(startDevIdp({ jwks: { keys: [await exportJWK(rsa.privateKey)] } })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    });
    await expect(startDevIdp({ jwks: { keys: [await exportJWK(rsa.publicKey)] } })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    });
  });

  it('lets resources.allow decide which resources get tokens', async () => {
    const idp = await startDevIdp({
      resources: { allow: (resource) => resource === 'https://mcp.example.com/mcp' },
    });
    try {
      const flow = await authorize(idp, {
        clientId: 'authsec-dev',
        redirectUri: 'http://127.0.0.1:3333/callback',
        resource: 'https://mcp.example.com/mcp',
        scope: 'read',
        login: 'admin@acme-corp.example',
        password: 'admin-password',
      });
      expect(flow.location?.searchParams.get('code')).toBeTruthy();
      const refused = await fetch(`${idp.issuer}/device/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_id: 'authsec-dev',
          scope: 'read',
          resource: 'http://127.0.0.1:1/mcp',
        }),
      });
      expect(((await refused.json()) as { error: string }).error).toBe('invalid_target');
    } finally {
      await idp.close();
    }
  });
});
