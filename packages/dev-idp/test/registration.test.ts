import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { authorize, tokenRequest, verifyAccessToken } from './helpers/flows.js';

const RESOURCE = 'http://localhost:3000/mcp';
const REDIRECT = 'http://localhost:8765/oauth/callback';

let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp();
});

afterAll(async () => {
  await idp?.close();
});

async function register(metadata: Record<string, unknown>) {
  const response = await fetch(new URL('/reg', idp.issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(metadata),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('dynamic client registration', () => {
  it('registers a public client the way the MCP SDK does, which then completes a flow', async () => {
    const { status, body } = await register({
      client_name: 'MCP client',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'read write',
    });
    expect(status).toBe(201);
    expect(body.client_secret).toBeUndefined();
    const clientId = String(body.client_id);

    const flow = await authorize(idp, {
      clientId,
      redirectUri: REDIRECT,
      resource: RESOURCE,
      scope: 'read write',
      login: 'admin@acme-corp.example',
      password: 'admin-password',
    });
    const tokens = await tokenRequest(idp, {
      grant_type: 'authorization_code',
      client_id: clientId,
      code: String(flow.location?.searchParams.get('code')),
      code_verifier: flow.verifier,
      redirect_uri: REDIRECT,
      resource: RESOURCE,
    });
    expect(tokens.status).toBe(200);
    expect(typeof tokens.body.refresh_token).toBe('string');
    const { payload } = await verifyAccessToken(idp, tokens.body.access_token, RESOURCE);
    expect(payload).toMatchObject({ client_id: clientId, scope: 'read write', tenant_id: 'acme-corp' });
  });

  it('does not let a registered client choose its tenant', async () => {
    const { status, body } = await register({
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      tenant_id: 'acme-corp',
    });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_client_metadata');
  });
});
