import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { tokenRequest, verifyAccessToken } from './helpers/flows.js';

const RESOURCE = 'http://127.0.0.1:1234/mcp';
const basic = (id: string, secret: string) => ({
  authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
});

let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp({
    clients: [
      {
        client_id: 'reporting-service',
        client_secret: 'reporting-secret-0123456789abcdef',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'read',
        tenant_id: 'acme-corp',
        roles: ['analyst'],
      },
    ],
  });
});

afterAll(async () => {
  await idp?.close();
});

describe('client credentials', () => {
  it('issues a JWT whose sub is the client and whose tenant comes from the client metadata', async () => {
    const { status, body } = await tokenRequest(
      idp,
      { grant_type: 'client_credentials', scope: 'read', resource: RESOURCE },
      basic('reporting-service', 'reporting-secret-0123456789abcdef'),
    );
    expect(status).toBe(200);
    const { payload } = await verifyAccessToken(idp, body.access_token, RESOURCE);
    expect(payload).toMatchObject({
      sub: 'reporting-service',
      client_id: 'reporting-service',
      tenant_id: 'acme-corp',
      roles: ['analyst'],
      scope: 'read',
    });
    expect(payload.email).toBeUndefined();
  });

  it('refuses a scope outside the client registration, and a wrong secret', async () => {
    const scope = await tokenRequest(
      idp,
      { grant_type: 'client_credentials', scope: 'read admin', resource: RESOURCE },
      basic('reporting-service', 'reporting-secret-0123456789abcdef'),
    );
    expect(scope.body.error).toBe('invalid_scope');
    const secret = await tokenRequest(
      idp,
      { grant_type: 'client_credentials', scope: 'read', resource: RESOURCE },
      basic('reporting-service', 'nope'),
    );
    expect(secret.status).toBe(401);
    expect(secret.body.error).toBe('invalid_client');
  });
});

describe('introspection and revocation', () => {
  const secret = 'reporting-secret-0123456789abcdef';
  const post = (path: string, fields: Record<string, string>, on = idp) =>
    fetch(new URL(path, on.issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic('reporting-service', secret) },
      body: new URLSearchParams(fields),
    });

  it('cannot introspect JWT access tokens (oidc-provider keeps no copy)', async () => {
    const { body } = await tokenRequest(
      idp,
      { grant_type: 'client_credentials', scope: 'read', resource: RESOURCE },
      basic('reporting-service', secret),
    );
    const response = await post('/token/introspection', { token: String(body.access_token) });
    expect(((await response.json()) as { error?: string }).error).toBe('unsupported_token_type');
  });

  it("introspects and revokes opaque access tokens with accessTokenFormat: 'opaque'", async () => {
    const opaque = await startDevIdp({
      accessTokenFormat: 'opaque',
      clients: [
        {
          client_id: 'reporting-service',
          client_secret: secret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          tenant_id: 'acme-corp',
        },
      ],
    });
    try {
      const { body } = await tokenRequest(
        opaque,
        { grant_type: 'client_credentials', scope: 'read write', resource: RESOURCE },
        basic('reporting-service', secret),
      );
      const token = String(body.access_token);
      expect(token.split('.')).toHaveLength(1);
      const active = await (await post('/token/introspection', { token }, opaque)).json();
      expect(active).toMatchObject({
        active: true,
        aud: RESOURCE,
        scope: 'read write',
        client_id: 'reporting-service',
        tenant_id: 'acme-corp',
        iss: opaque.issuer,
      });
      expect((await post('/token/revocation', { token }, opaque)).status).toBe(200);
      expect(await (await post('/token/introspection', { token }, opaque)).json()).toEqual({ active: false });
    } finally {
      await opaque.close();
    }
  });
});
