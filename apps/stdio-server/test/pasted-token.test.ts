/**
 * `oauth_authenticate { jwt_token }`: a token pasted by hand is verified like any other (signature, issuer,
 * audience, expiry), and a login on a short-lived token ends by itself at its expiry, hiding the tools and
 * sending `tools/list_changed`. The server runs against a dev IdP of the test's own (AUTHSEC_ISSUER), so the
 * test can mint tokens.
 */
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  claimsOf,
  forge,
  LOGIN_TOOLS,
  StdioApp,
  tempDir,
  textOf,
  tokensIn,
} from './helpers/stdio.js';

const AUDIENCE = 'urn:authsec:e2e-test';

interface LoginBody {
  status: string;
  error?: string;
  message?: string;
  session_id?: string;
  user_info?: { email: string };
  accessible_tools?: string[];
}

describe('oauth_authenticate with a pasted token, against an external issuer', () => {
  const data = tempDir('pasted');
  let idp: DevIdp;
  let app: StdioApp;

  beforeAll(async () => {
    idp = await startDevIdp({ port: 0 });
    app = await new StdioApp({
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_ISSUER: idp.issuer,
      AUTHSEC_CLIENT_ID: 'authsec-dev',
      AUTHSEC_RESOURCE_URL: AUDIENCE,
      AUTHSEC_REMEMBER_LOGIN: 'false',
    }).start();
  });

  afterAll(async () => {
    await app?.close();
    await idp?.close();
    data.remove();
  });

  async function paste(token: string): Promise<{ body: LoginBody; isError: boolean }> {
    const result = await app.call('oauth_authenticate', { jwt_token: token });
    return { body: result.structuredContent as unknown as LoginBody, isError: result.isError === true };
  }

  it('a FORGED token (same header and claims, signed by another key) is refused TOKEN_INVALID; tools stay hidden', async () => {
    const genuine = await idp.issueToken(ADMIN.email, { audience: AUDIENCE });
    const forged = forge(genuine);
    expect(claimsOf(forged)).toEqual(claimsOf(genuine));
    expect(forged).not.toBe(genuine);
    const seen = app.changes;
    const { body, isError } = await paste(forged);
    expect(isError).toBe(true);
    expect(body).toMatchObject({ status: 'error', error: 'TOKEN_INVALID' });
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    expect(textOf(await app.call('admin_panel'))).toMatch(/Authentication required/);
    expect((await app.login<LoginBody>('oauth_status')).status).not.toBe('authenticated');
    expect(app.changes).toBe(seen);
  });

  it('an EXPIRED token is refused TOKEN_EXPIRED; tools stay hidden', async () => {
    // Older than the 30 s clock tolerance.
    const expired = await idp.issueToken(ADMIN.email, { audience: AUDIENCE, ttlSeconds: -120 });
    const { body, isError } = await paste(expired);
    expect(isError).toBe(true);
    expect(body).toMatchObject({ status: 'error', error: 'TOKEN_EXPIRED' });
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
  });

  it('a token issued for another server (audience) is refused TOKEN_AUDIENCE', async () => {
    const elsewhere = await idp.issueToken(ADMIN.email, { audience: 'urn:authsec:some-other-server' });
    const { body, isError } = await paste(elsewhere);
    expect(isError).toBe(true);
    expect(body).toMatchObject({ status: 'error', error: 'TOKEN_AUDIENCE' });
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
  });

  it('a genuine token from the same IdP authenticates: list_changed, then the user’s tools', async () => {
    const token = await idp.issueToken(ADMIN.email, { audience: AUDIENCE });
    const seen = app.changes;
    const { body, isError } = await paste(token);
    expect(isError).toBe(false);
    expect(body.status).toBe('authenticated');
    expect(body.session_id).toBeTruthy();
    expect(body.user_info?.email).toBe(ADMIN.email);
    expect(body.accessible_tools).toEqual(expect.arrayContaining([...ADMIN_TOOLS]));
    await app.changedSince(seen);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    const status = await app.login<LoginBody>('oauth_status');
    expect(status).toMatchObject({ status: 'authenticated', session_id: body.session_id });
  });

  it('a forged token pasted while logged in changes nothing', async () => {
    const forged = forge(await idp.issueToken(ANALYST.email, { audience: AUDIENCE }));
    const { body } = await paste(forged);
    expect(body.error).toBe('TOKEN_INVALID');
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    const seen = app.changes;
    expect((await app.login<LoginBody>('oauth_logout')).status).toBe('logged_out');
    await app.changedSince(seen);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
  });

  it('expiry: a 3-second token without refresh token hides the tools by itself and sends list_changed', async () => {
    const token = await idp.issueToken(ANALYST.email, { audience: AUDIENCE, ttlSeconds: 3 });
    const exp = claimsOf(token).exp as number;
    const beforeLogin = app.changes;
    const { body } = await paste(token);
    expect(body.status).toBe('authenticated');
    await app.changedSince(beforeLogin);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ANALYST_TOOLS]);
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);

    // Nothing is asked from now on: the server must notice the expiry on its own. (Other notifications may
    // come before it; the one that counts arrives once the token has expired.)
    const waitStarted = Date.now();
    await app.changedAfter(exp * 1000, 10_000);
    expect(Date.now() - waitStarted).toBeLessThan(8_000);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    expect(textOf(await app.call('hello'))).toMatch(/Authentication required/);
    expect((await app.login<LoginBody>('oauth_status')).status).toBe('expired');
  });

  it('no tool result carried a token', () => {
    expect(tokensIn([app])).toEqual([]);
  });
});
