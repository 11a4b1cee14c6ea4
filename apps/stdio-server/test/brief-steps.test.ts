/**
 * The brief's steps 1 to 6 ("Test It Out") over stdio, end to end: the built `apps/stdio-server` on its
 * embedded defaults (dev IdP, PGlite, the demo tenant), driven by the official SDK client, with a real
 * browser-style login through the dev IdP's sign-in form and the server's loopback callback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  errorCode,
  freePort,
  LOGIN_TOOLS,
  StdioApp,
  tempDir,
  textOf,
  tokensIn,
} from './helpers/stdio.js';

const USER_INFO_KEYS = ['email', 'groups', 'resources', 'roles', 'scopes', 'sub', 'tenant_id'];

describe('stdio on embedded defaults: the brief, step by step', () => {
  const data = tempDir('steps');
  let idpPort: number;
  let app: StdioApp;
  let adminSession: string;

  beforeAll(async () => {
    idpPort = await freePort();
    app = await new StdioApp({
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_DEV_IDP_PORT: String(idpPort),
    }).start();
  });

  afterAll(async () => {
    await app?.close();
    data.remove();
  });

  it('step 1: before login only the five oauth_* tools are listed, and protected tools do not answer', async () => {
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    const hidden = await app.call('admin_panel');
    expect(hidden.isError).toBe(true);
    expect(errorCode(hidden)).toBe('TOKEN_MISSING');
    expect(textOf(hidden)).toMatch(/oauth_start/);
    // A hidden tool and a name that does not exist answer alike: nothing tells the caller the tool exists.
    const missing = await app.call('no_such_tool');
    expect(missing).toEqual(hidden);
    const status = await app.login<{ status: string }>('oauth_status');
    expect(status.status).toBe('not_found');
  });

  it('step 2: oauth_start returns a session id and an authorization URL (code + PKCE S256, loopback redirect)', async () => {
    const started = await app.login<Record<string, string>>('oauth_start');
    expect(started.status).toBe('ready_for_authentication');
    expect(started.session_id).toMatch(/^\S{16,}$/);
    const url = new URL(started.authorization_url!);
    expect(url.origin).toBe(`http://127.0.0.1:${idpPort}`);
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('client_id')).toBe('authsec-dev');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(url.searchParams.get('state')).toBeTruthy();
    expect(new URL(url.searchParams.get('redirect_uri')!).hostname).toBe('127.0.0.1');
    // The login is pending until the browser comes back.
    const status = await app.login<{ status: string; session_id: string }>('oauth_status', {
      session_id: started.session_id,
    });
    expect(status).toMatchObject({ status: 'ready_for_authentication', session_id: started.session_id });
  });

  it('steps 3-4: signing in through the browser form completes the login and sends tools/list_changed', async () => {
    const seen = app.changes;
    adminSession = await app.browserLogin(ADMIN);
    expect(app.changes).toBeGreaterThan(seen);
  });

  it("step 5: exactly the administrator's tools are listed", async () => {
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
  });

  it("step 6: tools run with the caller's identity in _user_info", async () => {
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    // A _user_info sent by the client is dropped: the server's own identity wins.
    const spoofed = await app.call('hello', {
      _user_info: { email: 'mallory@evil.example', roles: ['admin'] },
    });
    expect(textOf(spoofed)).toBe(`Hello, ${ADMIN.email}!`);
    expect(textOf(await app.call('admin_dashboard'))).toBe(`Welcome to admin dashboard, ${ADMIN.email}!`);
    expect(textOf(await app.call('view_analytics'))).toBe(
      'Analytics of tenant acme-corp: 42 active projects',
    );
  });

  it('step 6: allowed calls answer as the brief shows', async () => {
    const panel = await app.call('admin_panel');
    expect(panel.isError).toBeFalsy();
    expect(textOf(panel)).toBe('Admin panel accessed');
    expect(textOf(await app.call('create_resource', { name: 'Project Alpha' }))).toBe(
      "Resource 'Project Alpha' created successfully!",
    );
    expect(textOf(await app.call('calculator', { operation: 'multiply', a: 6, b: 7 }))).toBe(
      '6 multiply 7 = 42',
    );
    expect(textOf(await app.call('deploy_production'))).toBe('Deployment initiated');
    expect(textOf(await app.call('sensitive_operations'))).toBe('Sensitive operation completed');
  });

  it('oauth_status and oauth_user_info report the login and the user, never a token', async () => {
    const status = await app.login<Record<string, unknown>>('oauth_status');
    expect(status.status).toBe('authenticated');
    expect(status.session_id).toBe(adminSession);
    expect(status.accessible_tools).toEqual(expect.arrayContaining([...ADMIN_TOOLS]));
    const info = status.user_info as Record<string, unknown>;
    expect(Object.keys(info).sort()).toEqual(USER_INFO_KEYS);
    expect(info).toMatchObject({
      email: ADMIN.email,
      sub: ADMIN.sub,
      tenant_id: 'acme-corp',
      roles: expect.arrayContaining(['admin']),
      groups: expect.arrayContaining(['engineering', 'security-team']),
      scopes: expect.arrayContaining(['read', 'write']),
      resources: expect.arrayContaining(['analytics', 'production']),
    });
    const who = await app.login<Record<string, unknown>>('oauth_user_info');
    expect(who.status).toBe('authenticated');
    expect(who.user_info).toEqual(info);
    for (const body of [status, who]) expect(JSON.stringify(body)).not.toMatch(/token"\s*:/i);
  });

  it('oauth_logout hides the tools again and sends tools/list_changed', async () => {
    const seen = app.changes;
    const out = await app.login<{ status: string; session_id: string }>('oauth_logout');
    expect(out).toMatchObject({ status: 'logged_out', session_id: adminSession });
    await app.changedSince(seen);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    expect(errorCode(await app.call('admin_panel'))).toBe('TOKEN_MISSING');
    const status = await app.login<{ status: string }>('oauth_status');
    expect(status.status).toBe('logged_out');
  });

  it('another user logs in on the same client: only their tools, and denied calls say why', async () => {
    await app.browserLogin(ANALYST);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ANALYST_TOOLS]);
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
    expect(textOf(await app.call('view_reports'))).toBe('Business reports');

    // More scopes alone would allow it: the refusal names the missing scope.
    const create = await app.call('create_resource', { name: 'Nope' });
    expect(create.isError).toBe(true);
    expect(errorCode(create)).toBe('INSUFFICIENT_SCOPE');
    expect(textOf(create)).toMatch(/^Insufficient scope: .*write/);
    expect(create._meta?.['authsec/error']).toMatchObject({ scopes: expect.arrayContaining(['write']) });

    // Hidden is not forbidden: a hidden tool called anyway is authorized again, and refused.
    const panel = await app.call('admin_panel');
    expect(panel.isError).toBe(true);
    expect(errorCode(panel)).toBe('PERMISSION_DENIED');
    expect(textOf(panel)).toMatch(/^Permission denied: .*roles.*admin/);
  });

  it('no tool result of the whole session carried anything that looks like a JWT', () => {
    expect(app.results.length).toBeGreaterThan(15);
    expect(tokensIn([app])).toEqual([]);
  });
});
