import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { Browser, formOf } from './helpers/browser.js';
import { authorizationUrl, authorize, tokenRequest, verifyAccessToken } from './helpers/flows.js';

const RESOURCE = 'http://127.0.0.1:1234/mcp';
const REDIRECT = 'http://127.0.0.1:5555/callback';
const ADMIN = { login: 'admin@acme-corp.example', password: 'admin-password' };
const ANALYST = { login: 'analyst@acme-corp.example', password: 'analyst-password' };

let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp({
    clients: [
      {
        client_id: 'web-app',
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
      },
    ],
  });
});

afterAll(async () => {
  await idp?.close();
});

const base = { clientId: 'web-app', redirectUri: REDIRECT, resource: RESOURCE };

async function exchange(code: string, verifier: string, extra: Record<string, string | undefined> = {}) {
  return tokenRequest(idp, {
    grant_type: 'authorization_code',
    client_id: 'web-app',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
    resource: RESOURCE,
    ...extra,
  });
}

describe('authorization code + PKCE', () => {
  it('signs in through the form and issues an RFC 9068 access token for the resource', async () => {
    const flow = await authorize(idp, { ...base, scope: 'openid offline_access read write', ...ADMIN });
    expect(flow.location?.origin + (flow.location?.pathname ?? '')).toBe(REDIRECT);
    expect(flow.location?.searchParams.get('state')).toBe(flow.state);
    expect(flow.location?.searchParams.get('iss')).toBe(idp.issuer);
    const code = flow.location?.searchParams.get('code');
    expect(code).toBeTruthy();

    const { status, body } = await exchange(String(code), flow.verifier);
    expect(status).toBe(200);
    expect(body.token_type).toBe('Bearer');
    expect(body.scope).toBe('read write');
    expect(typeof body.refresh_token).toBe('string');
    expect(typeof body.id_token).toBe('string');

    const { payload, protectedHeader } = await verifyAccessToken(idp, body.access_token, RESOURCE);
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({
      iss: idp.issuer,
      aud: RESOURCE,
      sub: idp.users[0]?.sub,
      client_id: 'web-app',
      email: 'admin@acme-corp.example',
      tenant_id: 'acme-corp',
      roles: ['admin', 'developer'],
      groups: ['engineering', 'security-team'],
      resources: ['projects', 'analytics', 'production', 'sensitive-data'],
      permissions: [],
      scope: 'read write',
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);

    // The refresh token yields a new access token with the same claims (public client: rotated).
    const refreshed = await tokenRequest(idp, {
      grant_type: 'refresh_token',
      client_id: 'web-app',
      refresh_token: String(body.refresh_token),
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.access_token).not.toBe(body.access_token);
    expect(refreshed.body.refresh_token).not.toBe(body.refresh_token);
    const again = await verifyAccessToken(idp, refreshed.body.access_token, RESOURCE);
    const { jti: _a, iat: _b, exp: _c, ...claims } = payload;
    const { jti: _d, iat: _e, exp: _f, ...claimsAgain } = again.payload;
    expect(claimsAgain).toEqual(claims);
  });

  it('issues a refresh token without offline_access, and a second sign-in reuses the session', async () => {
    const browser = new Browser();
    const flow = await authorize(idp, { ...base, scope: 'read', ...ANALYST }, browser);
    const { body } = await exchange(String(flow.location?.searchParams.get('code')), flow.verifier);
    expect(typeof body.refresh_token).toBe('string');
    expect(body.id_token).toBeUndefined();

    // Same browser: no form this time, straight back to the client with a code.
    const { url } = authorizationUrl(idp, { ...base, scope: 'read' });
    const end = await browser.follow(await browser.request(url), url, idp.issuer);
    expect(end.location?.searchParams.get('code')).toBeTruthy();
  });

  it('grants only the requested scopes the user holds', async () => {
    const flow = await authorize(idp, { ...base, scope: 'openid read write admin', ...ANALYST });
    const { body } = await exchange(String(flow.location?.searchParams.get('code')), flow.verifier);
    expect(body.scope).toBe('read');
    const { payload } = await verifyAccessToken(idp, body.access_token, RESOURCE);
    expect(payload).toMatchObject({
      scope: 'read',
      roles: ['analyst'],
      groups: [],
      resources: ['analytics'],
    });
  });

  it('ends with access_denied when none of the requested scopes is granted', async () => {
    const browser = new Browser();
    const flow = await authorize(idp, { ...base, scope: 'write admin', ...ANALYST }, browser);
    expect(flow.location?.searchParams.get('error')).toBe('access_denied');
    expect(flow.location?.searchParams.get('code')).toBeNull();
  });

  it('without a resource, issues an opaque token good for userinfo only', async () => {
    const flow = await authorize(idp, { ...base, resource: undefined, scope: 'openid email', ...ANALYST });
    const { status, body } = await exchange(String(flow.location?.searchParams.get('code')), flow.verifier, {
      resource: undefined,
    });
    expect(status).toBe(200);
    expect(String(body.access_token).split('.')).toHaveLength(1);
    const userinfo = await fetch(new URL('/me', idp.issuer), {
      headers: { authorization: `Bearer ${String(body.access_token)}` },
    });
    expect(await userinfo.json()).toEqual({
      sub: idp.users[1]?.sub,
      email: 'analyst@acme-corp.example',
      email_verified: true,
    });
  });

  it('answers prompt=consent by itself, granting offline_access', async () => {
    const flow = await authorize(idp, {
      ...base,
      scope: 'offline_access read admin',
      params: { prompt: 'consent' },
      ...ANALYST,
    });
    const code = flow.location?.searchParams.get('code');
    expect(code).toBeTruthy();
    const { body } = await exchange(String(code), flow.verifier);
    expect(body.scope).toBe('read');
    expect(typeof body.refresh_token).toBe('string');
  });

  it('takes the resource from the grant when the token request omits it', async () => {
    const flow = await authorize(idp, { ...base, scope: 'read', ...ADMIN });
    const { status, body } = await exchange(String(flow.location?.searchParams.get('code')), flow.verifier, {
      resource: undefined,
    });
    expect(status).toBe(200);
    expect(decodeJwt(String(body.access_token)).aud).toBe(RESOURCE);
  });

  it('shows the form again on a wrong password and issues no code', async () => {
    const browser = new Browser();
    const { url } = authorizationUrl(idp, { ...base, scope: 'read' });
    const first = await browser.follow(await browser.request(url), url, idp.issuer);
    const form = formOf(await first.response.text());
    const action = new URL(form.action, first.url);
    const response = await browser.post(action, { login: ADMIN.login, password: 'wrong' });
    expect(response.status).toBe(200);
    expect(response.headers.get('location')).toBeNull();
    const html = await response.text();
    expect(html).toContain('Wrong email or password.');
    expect([...formOf(html).fields.keys()].sort()).toEqual(['login', 'password']);

    const unknown = await browser.post(action, { login: 'nobody@acme-corp.example', password: 'x' });
    expect(unknown.status).toBe(200);
    expect(await unknown.text()).toContain('Wrong email or password.');
  });

  it('escapes what it echoes into the page', async () => {
    const browser = new Browser();
    const { url } = authorizationUrl(idp, { ...base, scope: 'read' });
    const first = await browser.follow(await browser.request(url), url, idp.issuer);
    const action = new URL(formOf(await first.response.text()).action, first.url);
    const html = await (
      await browser.post(action, { login: '"><script>alert(1)</script>', password: 'x' })
    ).text();
    expect(html).not.toContain('<script>');
    expect(html).toContain('&quot;&gt;&lt;script&gt;');
  });

  it('refuses code_challenge_method=plain', async () => {
    const browser = new Browser();
    const { url } = authorizationUrl(idp, {
      ...base,
      scope: 'read',
      params: { code_challenge_method: 'plain' },
    });
    const end = await browser.follow(await browser.request(url), url, idp.issuer);
    expect(end.location?.searchParams.get('error')).toBe('invalid_request');
    expect(end.location?.searchParams.get('code')).toBeNull();
  });

  it('refuses a request without code_challenge', async () => {
    const browser = new Browser();
    const { url } = authorizationUrl(idp, {
      ...base,
      scope: 'read',
      params: { code_challenge: undefined, code_challenge_method: undefined },
    });
    const end = await browser.follow(await browser.request(url), url, idp.issuer);
    expect(end.location?.searchParams.get('error')).toBe('invalid_request');
    expect(end.location?.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('refuses a wrong code_verifier, and the code is then spent', async () => {
    const flow = await authorize(idp, { ...base, scope: 'read', ...ADMIN });
    const code = String(flow.location?.searchParams.get('code'));
    const wrong = await exchange(code, `${flow.verifier.slice(0, -2)}xx`);
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('invalid_grant');
    const missing = await exchange(code, undefined as unknown as string, { code_verifier: undefined });
    expect(missing.body.error).toBe('invalid_grant');
  });

  it('refuses a resource outside loopback and urn:', async () => {
    const browser = new Browser();
    const { url } = authorizationUrl(idp, {
      ...base,
      scope: 'read',
      resource: 'https://api.example.com/mcp',
    });
    const end = await browser.follow(await browser.request(url), url, idp.issuer);
    expect(end.location?.searchParams.get('error')).toBe('invalid_target');
  });

  it('accepts a urn: resource and the default public client on any loopback port', async () => {
    const flow = await authorize(idp, {
      clientId: 'authsec-dev',
      redirectUri: 'http://127.0.0.1:61234/callback',
      resource: 'urn:authsec:stdio-server',
      scope: 'read write',
      ...ADMIN,
    });
    const code = String(flow.location?.searchParams.get('code'));
    const { status, body } = await tokenRequest(idp, {
      grant_type: 'authorization_code',
      client_id: 'authsec-dev',
      code,
      code_verifier: flow.verifier,
      redirect_uri: 'http://127.0.0.1:61234/callback',
    });
    expect(status).toBe(200);
    const { payload } = await verifyAccessToken(idp, body.access_token, 'urn:authsec:stdio-server');
    expect(payload.client_id).toBe('authsec-dev');
  });
});
