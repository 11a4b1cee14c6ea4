import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';

let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp();
});

afterAll(async () => {
  await idp?.close();
});

async function json(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(new URL(path, idp.issuer));
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('discovery and JWKS', () => {
  it('listens on loopback with an http issuer', () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(idp.url).toBe(idp.issuer);
    expect(idp.jwksUrl).toBe(`${idp.issuer}/jwks`);
  });

  it('serves the OpenID configuration', async () => {
    const { status, body } = await json('/.well-known/openid-configuration');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      issuer: idp.issuer,
      authorization_endpoint: `${idp.issuer}/auth`,
      token_endpoint: `${idp.issuer}/token`,
      jwks_uri: idp.jwksUrl,
      registration_endpoint: `${idp.issuer}/reg`,
      device_authorization_endpoint: `${idp.issuer}/device/auth`,
      revocation_endpoint: `${idp.issuer}/token/revocation`,
      introspection_endpoint: `${idp.issuer}/token/introspection`,
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
    });
    expect(body.grant_types_supported).toEqual(
      expect.arrayContaining([
        'authorization_code',
        'refresh_token',
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:device_code',
      ]),
    );
    expect(body.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'offline_access', 'email', 'profile', 'read', 'write', 'admin']),
    );
  });

  it('serves the same metadata at the RFC 8414 location', async () => {
    const oidc = await json('/.well-known/openid-configuration');
    const oauth = await json('/.well-known/oauth-authorization-server');
    expect(oauth.status).toBe(200);
    expect(oauth.body).toEqual(oidc.body);
  });

  it('publishes public keys only: one ES256 and one RS256 key', async () => {
    const { status, body } = await json('/jwks');
    expect(status).toBe(200);
    const keys = body.keys as Array<Record<string, unknown>>;
    expect(keys.map((key) => key.alg).sort()).toEqual(['ES256', 'RS256']);
    for (const key of keys) {
      expect(key.d).toBeUndefined();
      expect(key.p).toBeUndefined();
      expect(typeof key.kid).toBe('string');
    }
  });

  it('answers an unknown interaction with a page, not a crash', async () => {
    const response = await fetch(new URL('/interaction/unknown-uid', idp.issuer));
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    expect(response.headers.get('x-frame-options')).toBe('DENY');
  });
});
