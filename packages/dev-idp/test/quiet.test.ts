import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { authorize, tokenRequest } from './helpers/flows.js';

// oidc-provider prints its "you SHOULD change this default" notices with console.info, i.e. on stdout,
// which belongs to MCP under stdio. Every such default is replaced; this test keeps it that way.
describe('console output', () => {
  let idp: DevIdp;
  const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) =>
    vi.spyOn(console, method).mockImplementation(() => {}),
  );

  beforeAll(async () => {
    idp = await startDevIdp({
      clients: [
        {
          client_id: 'svc',
          client_secret: 'svc-secret-0123456789abcdef',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        },
      ],
    });
  });

  afterAll(async () => {
    await idp?.close();
    for (const spy of spies) spy.mockRestore();
  });

  it('writes nothing to the console during flows, errors and device pages', async () => {
    const flow = await authorize(idp, {
      clientId: 'authsec-dev',
      redirectUri: 'http://127.0.0.1:7777/callback',
      resource: 'urn:quiet',
      scope: 'openid read',
      login: 'admin@acme-corp.example',
      password: 'admin-password',
    });
    const { body } = await tokenRequest(idp, {
      grant_type: 'authorization_code',
      client_id: 'authsec-dev',
      code: String(flow.location?.searchParams.get('code')),
      code_verifier: flow.verifier,
      redirect_uri: 'http://127.0.0.1:7777/callback',
    });
    await tokenRequest(idp, {
      grant_type: 'refresh_token',
      client_id: 'authsec-dev',
      refresh_token: String(body.refresh_token),
    });
    await tokenRequest(
      idp,
      { grant_type: 'client_credentials', resource: 'urn:quiet', scope: 'read' },
      { authorization: `Basic ${Buffer.from('svc:svc-secret-0123456789abcdef').toString('base64')}` },
    );
    await fetch(`${idp.issuer}/device`);
    await fetch(`${idp.issuer}/auth?client_id=nope`);
    await fetch(`${idp.issuer}/session/end`);
    await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'authsec-dev', token: String(body.refresh_token) }),
    });
    await fetch(`${idp.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'authsec-dev', token: 'x' }),
    });
    await fetch(`${idp.issuer}/me`, { headers: { authorization: 'Bearer nope' } });
    const calls = spies.flatMap((spy) => spy.mock.calls.map((args) => String(args[0])));
    expect(calls).toEqual([]);
  });
});
