import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { Browser, formOf } from './helpers/browser.js';
import { tokenRequest, verifyAccessToken } from './helpers/flows.js';

const RESOURCE = 'http://127.0.0.1:1234/mcp';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp();
});

afterAll(async () => {
  await idp?.close();
});

async function deviceAuthorization(scope: string) {
  const response = await fetch(new URL('/device/auth', idp.issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'authsec-dev', scope, resource: RESOURCE }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, string | number>;
}

describe('device authorization grant', () => {
  it('goes from user code to sign-in to a token', async () => {
    const device = await deviceAuthorization('openid read write');
    expect(device.verification_uri).toBe(`${idp.issuer}/device`);
    expect(typeof device.user_code).toBe('string');

    const pending = await tokenRequest(idp, {
      grant_type: DEVICE_GRANT,
      client_id: 'authsec-dev',
      device_code: String(device.device_code),
    });
    expect(pending.body.error).toBe('authorization_pending');

    const browser = new Browser();
    const verification = new URL(String(device.verification_uri));
    // Page 1: enter the code (fields: xsrf, user_code).
    const input = formOf(await (await browser.request(verification)).text());
    expect([...input.fields.keys()].sort()).toEqual(['user_code', 'xsrf']);
    const confirmPage = await browser.post(new URL(input.action, verification), {
      xsrf: input.fields.get('xsrf') ?? '',
      user_code: String(device.user_code),
    });
    expect(confirmPage.status).toBe(200);
    // Page 2: confirm (fields: xsrf, user_code, confirm=yes).
    const confirm = formOf(await confirmPage.text());
    expect([...confirm.fields.keys()].sort()).toEqual(['confirm', 'user_code', 'xsrf']);
    const confirmed = await browser.post(
      new URL(confirm.action, verification),
      Object.fromEntries(confirm.fields),
    );
    // Page 3: sign in (fields: login, password).
    const signIn = await browser.follow(confirmed, verification, idp.issuer);
    const login = formOf(await signIn.response.text());
    expect([...login.fields.keys()].sort()).toEqual(['login', 'password']);
    const posted = await browser.post(new URL(login.action, signIn.url), {
      login: 'analyst@acme-corp.example',
      password: 'analyst-password',
    });
    const done = await browser.follow(posted, signIn.url, idp.issuer);
    expect(done.response.status).toBe(200);
    expect(await done.response.text()).toContain('Signed in');

    const { status, body } = await tokenRequest(idp, {
      grant_type: DEVICE_GRANT,
      client_id: 'authsec-dev',
      device_code: String(device.device_code),
    });
    expect(status).toBe(200);
    expect(body.scope).toBe('read');
    expect(typeof body.refresh_token).toBe('string');
    const { payload } = await verifyAccessToken(idp, body.access_token, RESOURCE);
    expect(payload).toMatchObject({
      email: 'analyst@acme-corp.example',
      tenant_id: 'acme-corp',
      scope: 'read',
    });
  });

  it('refuses a wrong user code on the code page', async () => {
    await deviceAuthorization('read');
    const browser = new Browser();
    const verification = new URL('/device', idp.issuer);
    const input = formOf(await (await browser.request(verification)).text());
    const response = await browser.post(new URL(input.action, verification), {
      xsrf: input.fields.get('xsrf') ?? '',
      user_code: 'WRONG-CODE',
    });
    expect(await response.text()).toContain('The code you entered is incorrect.');
  });
});
