import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuditEvent,
  createAuthSec,
  createMemorySessionStore,
  createOAuthClient,
  isAuthSecError,
  parseMasterKey,
  silentLogger,
} from '@authsec/core';
import {
  createPgClient,
  openStorage,
  readAuditEvents,
  type Storage,
  seedDemoTenant,
} from '@authsec/core/postgres';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createToolLogin } from '../../src/login/index.js';
import { approveDevice, signIn } from './helpers/browser.js';
import {
  ADMIN,
  ANALYST,
  engine,
  forgedToken,
  type Harness,
  harness,
  offsetClock,
  RESOURCE,
} from './helpers/setup.js';

let idp: DevIdp;
const open: Harness[] = [];

beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  await idp?.close();
});

async function setup(extra: Parameters<typeof harness>[1] = {}): Promise<Harness> {
  const h = await harness(idp, extra);
  open.push(h);
  return h;
}

/** oauth_start, then the browser part, returning the callback URL the IdP sent the browser to. */
async function startAndSignIn(h: Harness, connectionId: string, user = ADMIN) {
  const started = await h.body(connectionId, 'oauth_start');
  expect(started.status).toBe('ready_for_authentication');
  const callback = await signIn(String(started.authorization_url), user.email, user.password);
  return { started, callback, sessionId: String(started.session_id) };
}

/** Every token of a session must be absent from every result text seen so far. */
async function expectNoTokenIn(h: Harness, sessionId: string, extra: string[] = []) {
  const tokens = await h.sessions.tokens(sessionId);
  const secrets = [tokens?.accessToken, tokens?.refreshToken, tokens?.idToken, ...extra].filter(
    (t): t is string => typeof t === 'string',
  );
  expect(secrets.length).toBeGreaterThan(0);
  for (const text of h.texts) for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('the login tools', () => {
  it('are the five public oauth_* tools with JSON Schema inputs', async () => {
    const h = await setup();
    expect(h.login.tools.map((t) => t.name)).toEqual([
      'oauth_start',
      'oauth_authenticate',
      'oauth_status',
      'oauth_logout',
      'oauth_user_info',
    ]);
    for (const tool of h.login.tools) {
      expect(tool.public).toBe(true);
      expect(tool.requirement).toBeUndefined();
      expect(tool.inputSchema.type).toBe('object');
      expect(typeof tool.description).toBe('string');
    }
  });

  it('report not_found before any login, and refuse bad arguments', async () => {
    const h = await setup();
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'not_found' });
    expect(await h.body('c1', 'oauth_user_info')).toMatchObject({ status: 'not_found' });
    expect(await h.body('c1', 'oauth_status', { session_id: 'x'.repeat(43) })).toMatchObject({
      status: 'not_found',
    });
    const missing = await h.call('c1', 'oauth_authenticate', {});
    expect(missing.isError).toBe(true);
    expect(missing.structuredContent).toMatchObject({ status: 'error', error: 'BAD_REQUEST' });
    const wrongType = await h.call('c1', 'oauth_authenticate', { jwt_token: 42 });
    expect(wrongType.structuredContent).toMatchObject({ error: 'BAD_REQUEST' });
    expect(() => h.login.tools[1]!.parse({ session_id: 7 })).toThrow();
    expect(await h.login.principalFor('c1')).toBeUndefined();
  });
});

describe('authorization code + PKCE through the loopback callback', () => {
  it('logs in c1 only, notifies c1 only, and reports the user and accessible tools', async () => {
    const h = await setup();
    const { started, callback, sessionId } = await startAndSignIn(h, 'c1');
    expect(String(started.instructions)).toContain('browser');
    const authorizationUrl = new URL(String(started.authorization_url));
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizationUrl.searchParams.get('resource')).toBe(RESOURCE);
    expect(callback.origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(callback.pathname).toBe('/callback');
    // Before the callback: pending, nobody logged in.
    expect(await h.body('c1', 'oauth_status')).toMatchObject({
      status: 'ready_for_authentication',
      session_id: sessionId,
    });
    expect(await h.login.principalFor('c1')).toBeUndefined();

    const changed = h.waitForChange('c1');
    const page = await fetch(callback);
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    expect(html).toContain('Login complete');
    await changed;
    expect(h.changes).toEqual(['c1']);

    const principal = await h.login.principalFor('c1');
    expect(principal?.email).toBe(ADMIN.email);
    expect(await h.login.principalFor('c2')).toBeUndefined();
    expect(h.login.sessionIdFor('c1')).toBe(sessionId);
    expect(h.login.sessionIdFor('c2')).toBeUndefined();

    const status = await h.body('c1', 'oauth_status');
    expect(status).toMatchObject({
      status: 'authenticated',
      session_id: sessionId,
      user_info: { email: ADMIN.email, tenant_id: 'acme-corp', roles: ['admin', 'developer'] },
      accessible_tools: ['hello', 'admin_panel', 'view_reports'],
    });
    expect(Object.keys(status.user_info as object).sort()).toEqual(
      ['email', 'groups', 'resources', 'roles', 'scopes', 'sub', 'tenant_id'].sort(),
    );
    expect(await h.body('c1', 'oauth_user_info')).toMatchObject({
      status: 'authenticated',
      user_info: { email: ADMIN.email },
    });
    expect(await h.body('c1', 'oauth_authenticate', { session_id: sessionId })).toMatchObject({
      status: 'authenticated',
    });
    expect(await h.body('c2', 'oauth_status')).toMatchObject({ status: 'not_found' });

    // The same callback again: the state is spent; nothing changes.
    const replay = await fetch(callback);
    expect(replay.status).toBe(400);
    expect(await replay.text()).not.toContain(callback.searchParams.get('code')!);
    expect(h.changes).toEqual(['c1']);
    await expectNoTokenIn(h, sessionId, [callback.searchParams.get('code')!]);
  });

  it('refuses a wrong state at the callback (400) without any login', async () => {
    const h = await setup();
    const { callback } = await startAndSignIn(h, 'c1');
    const forged = new URL(callback);
    forged.searchParams.set('state', 'A'.repeat(43));
    const response = await fetch(forged);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('Login not recognised');
    const noState = new URL(callback);
    noState.searchParams.delete('state');
    expect((await fetch(noState)).status).toBe(400);
    expect(h.changes).toEqual([]);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    // The real callback still works afterwards.
    expect((await fetch(callback)).status).toBe(200);
    expect((await h.login.principalFor('c1'))?.email).toBe(ADMIN.email);
  });

  it('answers access_denied with a 400 page and reports the failed login', async () => {
    const h = await setup();
    const started = await h.body('c1', 'oauth_start');
    const state = new URL(String(started.authorization_url)).searchParams.get('state')!;
    const redirect = new URL(
      String(new URL(String(started.authorization_url)).searchParams.get('redirect_uri')),
    );
    redirect.searchParams.set('error', 'access_denied');
    redirect.searchParams.set('state', state);
    redirect.searchParams.set('iss', idp.issuer);
    const response = await fetch(redirect);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('access_denied');
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(h.changes).toEqual([]);
    expect(await h.body('c1', 'oauth_status', { session_id: started.session_id })).toMatchObject({
      status: 'logged_out',
      error: 'BAD_REQUEST',
    });
  });

  it('answers only GET on the callback path, and only for a loopback Host', async () => {
    const h = await setup();
    const started = await h.body('c1', 'oauth_start');
    const redirect = new URL(
      String(new URL(String(started.authorization_url)).searchParams.get('redirect_uri')),
    );
    expect((await fetch(redirect, { method: 'POST' })).status).toBe(405);
    expect((await fetch(new URL('/other', redirect))).status).toBe(404);
    const { request } = await import('node:http');
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(redirect, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it('restores a session on another connection that presents its session_id', async () => {
    const h = await setup();
    const { callback, sessionId } = await startAndSignIn(h, 'c1');
    await fetch(callback);
    expect(await h.login.principalFor('c2')).toBeUndefined();
    const restored = await h.body('c2', 'oauth_status', { session_id: sessionId });
    expect(restored).toMatchObject({ status: 'authenticated', session_id: sessionId });
    expect(h.changes).toEqual(['c1', 'c2']);
    expect((await h.login.principalFor('c2'))?.email).toBe(ADMIN.email);
  });

  it('forgets a disconnected connection: its pending login no longer completes', async () => {
    const h = await setup();
    const { callback } = await startAndSignIn(h, 'c1');
    h.login.disconnect('c1');
    expect((await fetch(callback)).status).toBe(400);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(h.changes).toEqual([]);
  });
});

describe('oauth_authenticate with a pasted token', () => {
  it('accepts a valid token for this server', async () => {
    const h = await setup();
    const token = await idp.issueToken(ANALYST.email, { audience: RESOURCE });
    const result = await h.call('c1', 'oauth_authenticate', { jwt_token: token });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({
      status: 'authenticated',
      user_info: { email: ANALYST.email, roles: ['analyst'] },
      accessible_tools: ['hello', 'view_reports'],
    });
    expect(h.changes).toEqual(['c1']);
    expect((await h.login.principalFor('c1'))?.email).toBe(ANALYST.email);
    for (const text of h.texts) expect(text).not.toContain(token);
  });

  it('refuses a forged, an expired and a foreign-audience token, naming the code', async () => {
    const h = await setup();
    const cases: Array<[string, string]> = [
      [forgedToken(idp.issuer), 'TOKEN_INVALID'],
      [await idp.issueToken(ADMIN.email, { audience: RESOURCE, ttlSeconds: -120 }), 'TOKEN_EXPIRED'],
      [await idp.issueToken(ADMIN.email, { audience: 'http://127.0.0.1:1/other' }), 'TOKEN_AUDIENCE'],
      ['not-a-jwt', 'TOKEN_INVALID'],
    ];
    for (const [token, code] of cases) {
      const result = await h.call('c1', 'oauth_authenticate', { jwt_token: token });
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toMatchObject({ status: 'error', error: code });
      expect(result._meta).toEqual({ 'authsec/error': { code } });
      for (const text of h.texts) expect(text).not.toContain(token);
    }
    expect(h.changes).toEqual([]);
    expect(await h.login.principalFor('c1')).toBeUndefined();
  });
});

describe('expiry and refresh', () => {
  it('hides the login once its token expires (injected clock) and reports expired', async () => {
    const clock = offsetClock();
    const h = await setup({ clock: clock.now });
    const token = await idp.issueToken(ADMIN.email, { audience: RESOURCE, ttlSeconds: 60 });
    await h.call('c1', 'oauth_authenticate', { jwt_token: token });
    expect((await h.login.principalFor('c1'))?.email).toBe(ADMIN.email);
    h.changes.length = 0;
    clock.advance(61_000);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(h.changes).toEqual(['c1']);
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'expired' });
    expect(await h.body('c1', 'oauth_user_info')).toMatchObject({ status: 'expired' });
  });

  it('hides the login at expiry without any request (timer), with list_changed', async () => {
    const h = await setup();
    const token = await idp.issueToken(ADMIN.email, { audience: RESOURCE, ttlSeconds: 2 });
    await h.call('c1', 'oauth_authenticate', { jwt_token: token });
    expect(h.changes).toEqual(['c1']);
    await h.waitForChange('c1', 6_000);
    expect(h.changes).toEqual(['c1', 'c1']);
    expect(h.login.sessionIdFor('c1')).toBeUndefined();
    expect(await h.login.principalFor('c1')).toBeUndefined();
  });

  it('refreshes near expiry with the refresh token and keeps the user', async () => {
    const clock = offsetClock();
    const h = await setup({ clock: clock.now, refreshBeforeExpiryMs: 30_000 });
    const { callback, sessionId } = await startAndSignIn(h, 'c1');
    await fetch(callback);
    const before = await h.sessions.tokens(sessionId);
    expect(before?.refreshToken).toBeTruthy();
    clock.advance(580_000);
    const principal = await h.login.principalFor('c1');
    expect(principal?.email).toBe(ADMIN.email);
    const after = await h.sessions.tokens(sessionId);
    expect(after?.accessToken).not.toBe(before?.accessToken);
    expect(after?.refreshToken).not.toBe(before?.refreshToken);
    expect(h.changes).toEqual(['c1']);
    expect(h.login.sessionIdFor('c1')).toBe(sessionId);
    await expectNoTokenIn(h, sessionId, [before!.accessToken, before!.refreshToken!]);
  });

  it('ends the login when the refresh token no longer works', async () => {
    const clock = offsetClock();
    const h = await setup({ clock: clock.now });
    const { callback, sessionId } = await startAndSignIn(h, 'c1');
    await fetch(callback);
    const tokens = await h.sessions.tokens(sessionId);
    expect(await h.oauth.revoke(tokens!.refreshToken!, 'refresh_token')).toBe(true);
    clock.advance(700_000);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(h.changes).toEqual(['c1', 'c1']);
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'expired', session_id: sessionId });
  });
});

describe('oauth_logout', () => {
  it('ends the session, revokes the refresh token and hides the login', async () => {
    const h = await setup();
    const { callback, sessionId } = await startAndSignIn(h, 'c1');
    await fetch(callback);
    await h.body('c2', 'oauth_status', { session_id: sessionId });
    const tokens = await h.sessions.tokens(sessionId);
    h.changes.length = 0;
    const result = await h.body('c1', 'oauth_logout');
    expect(result).toMatchObject({ status: 'logged_out', session_id: sessionId, revoked: true });
    expect(h.changes.sort()).toEqual(['c1', 'c2']);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(await h.login.principalFor('c2')).toBeUndefined();
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'logged_out' });
    expect(await h.body('c3', 'oauth_status', { session_id: sessionId })).toMatchObject({
      status: 'logged_out',
    });
    const refused = await h.oauth.refresh(tokens!.refreshToken!).catch((error: unknown) => error);
    expect(isAuthSecError(refused) && refused.code).toBe('TOKEN_INVALID');
    expect(await h.body('c1', 'oauth_logout')).toMatchObject({ status: 'logged_out' });
  });
});

const PG_URL = process.env.PG_URL || undefined;
if (!PG_URL) {
  process.stderr.write(
    'skip: PG_URL is not set: the login audit cases run on PGlite only (.ci/run sets it)\n',
  );
}

/** Where the tenant's audit log lives: the embedded database always, real PostgreSQL when PG_URL is set. */
const AUDIT_STORES: readonly {
  name: string;
  open(): Promise<{ storage: Storage; dispose(): Promise<void> }>;
}[] = [
  {
    name: 'pglite',
    async open() {
      const storage = await openStorage({
        dataDir: mkdtempSync(join(tmpdir(), 'authsec-tool-login-audit-')),
        masterKey: parseMasterKey(Buffer.alloc(32, 7).toString('base64')),
        logger: silentLogger,
      });
      return { storage, dispose: () => storage.close() };
    },
  },
  ...(PG_URL
    ? [
        {
          name: 'postgres',
          async open() {
            // A fresh database of this file's own on the shared server, dropped at the end.
            const name = `login_audit_${Math.random().toString(16).slice(2, 12)}`;
            const admin = await createPgClient({ connectionString: PG_URL, max: 1 });
            await admin.query(`CREATE DATABASE "${name}"`);
            const url = new URL(PG_URL);
            url.pathname = `/${name}`;
            const storage = await openStorage({
              databaseUrl: url.toString(),
              masterKey: parseMasterKey(Buffer.alloc(32, 7).toString('base64')),
              logger: silentLogger,
            });
            return {
              storage,
              async dispose() {
                await storage.close();
                await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
                await admin.close();
              },
            };
          },
        },
      ]
    : []),
];

describe.each(AUDIT_STORES)("the end of a login in the tenant's audit log ($name)", ({ open: openStore }) => {
  let storage: Storage;
  let dispose: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ storage, dispose } = await openStore());
    await seedDemoTenant(storage.tenancy, storage.directory);
  }, 60_000);

  afterAll(async () => {
    await dispose?.();
  });

  /** An engine auditing into the tenant's store (closing it leaves the store to this suite). */
  function audited(clock?: () => number) {
    const sink = {
      write: (event: AuditEvent) => storage.audit.write(event),
      flush: () => storage.audit.flush(),
      close: async () => {},
    };
    const authsec = createAuthSec({
      issuers: [idp.issuer],
      audience: RESOURCE,
      logger: silentLogger,
      audit: { sinks: [sink] },
      ...(clock ? { clock, clockToleranceSeconds: 0 } : {}),
    });
    return authsec;
  }

  /** The targets of the `logout` rows the tenant's audit log holds for `subject`. */
  async function logoutsOf(subject: string): Promise<(string | undefined)[]> {
    await storage.audit.flush();
    const events = await readAuditEvents(await storage.tenancy.handle('acme-corp'), { limit: 1000 });
    return events.filter((e) => e.action === 'logout' && e.subject === subject).map((e) => e.target);
  }

  it('holds a logout row for the subject after oauth_logout', async () => {
    const authsec = audited();
    const h = await setup({ authsec });
    const { callback } = await startAndSignIn(h, 'c1');
    await fetch(callback);
    const subject = (await h.login.principalFor('c1'))!.subject;
    const before = storage.audit.skipped;
    expect(await h.body('c1', 'oauth_logout')).toMatchObject({ status: 'logged_out' });
    expect(await logoutsOf(subject)).toEqual(['oauth_logout']);
    expect(storage.audit.skipped).toBe(before);
    await authsec.close();
  });

  it('holds a logout row for the subject after the login expired', async () => {
    const clock = offsetClock();
    const authsec = audited(clock.now);
    const h = await setup({ authsec, clock: clock.now });
    const token = await idp.issueToken(ANALYST.email, { audience: RESOURCE, ttlSeconds: 60 });
    await h.call('c1', 'oauth_authenticate', { jwt_token: token });
    const subject = (await h.login.principalFor('c1'))!.subject;
    const before = storage.audit.skipped;
    clock.advance(61_000);
    expect(await h.login.principalFor('c1')).toBeUndefined();
    expect(await logoutsOf(subject)).toEqual(['expired']);
    expect(storage.audit.skipped).toBe(before);
    await authsec.close();
  });
});

describe('device authorization grant', () => {
  it('logs in with a user code and notifies the connection', async () => {
    const h = await setup({ flow: 'device' });
    const started = await h.body('c1', 'oauth_start');
    expect(started).toMatchObject({
      status: 'ready_for_authentication',
      verification_uri: `${idp.issuer}/device`,
    });
    expect(typeof started.user_code).toBe('string');
    expect(String(started.instructions)).toContain(String(started.user_code));
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'ready_for_authentication' });
    const changed = h.waitForChange('c1', 20_000);
    const page = await approveDevice(
      String(started.verification_uri),
      String(started.user_code),
      ADMIN.email,
      ADMIN.password,
    );
    expect(page).toContain('Signed in');
    await changed;
    expect((await h.login.principalFor('c1'))?.email).toBe(ADMIN.email);
    expect(await h.body('c1', 'oauth_status')).toMatchObject({
      status: 'authenticated',
      session_id: started.session_id,
    });
    await expectNoTokenIn(h, String(started.session_id));
  });
});

describe('flow selection', () => {
  it("'auto' uses the device flow when the provider has no authorization endpoint", async () => {
    const base = await setup();
    const deviceOnly = Object.freeze({ ...base.oauth, supportsAuthorizationCode: false });
    const h = await setup({ flow: 'auto', oauth: deviceOnly });
    const started = await h.body('c1', 'oauth_start');
    expect(started).toMatchObject({ status: 'ready_for_authentication' });
    expect(typeof started.user_code).toBe('string');
    expect(await h.body('c1', 'oauth_logout')).toMatchObject({ status: 'logged_out' });
    expect(await h.body('c1', 'oauth_status')).toMatchObject({ status: 'not_found' });
  });
});

describe('failures', () => {
  it('fails closed (SERVICE_UNAVAILABLE) when the session store cannot answer', async () => {
    const h = await setup({ recheckIntervalMs: 0 });
    const token = await idp.issueToken(ADMIN.email, { audience: RESOURCE });
    await h.call('c1', 'oauth_authenticate', { jwt_token: token });
    expect((await h.login.principalFor('c1'))?.email).toBe(ADMIN.email);
    await h.sessions.close();
    const error = await h.login.principalFor('c1').catch((e: unknown) => e);
    expect(isAuthSecError(error) && error.code).toBe('SERVICE_UNAVAILABLE');
    const status = await h.call('c1', 'oauth_status');
    expect(status.structuredContent).toMatchObject({ status: 'error', error: 'SERVICE_UNAVAILABLE' });
  });

  it('reports an unreachable provider as SERVICE_UNAVAILABLE and retries creation later', async () => {
    let attempts = 0;
    const other = await startDevIdp({ logger: silentLogger });
    const issuer = other.issuer;
    await other.close();
    const authsec = engine(idp);
    const login = createToolLogin({
      authsec,
      sessions: createMemorySessionStore(),
      logger: silentLogger,
      oauth: () => {
        attempts++;
        return createOAuthClient({ issuer, clientId: 'authsec-dev', logger: silentLogger });
      },
    });
    const tool = login.tools[0]!;
    const context = {
      user: undefined,
      principal: undefined,
      tenant: undefined,
      sessionId: undefined,
      services: { getServiceToken: async () => '', getServiceCredentials: async () => ({}) },
      signal: new AbortController().signal,
      connectionId: 'c1',
    } as unknown as Parameters<typeof tool.run>[1];
    for (let i = 0; i < 2; i++) {
      const result = await tool.run({}, context);
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toMatchObject({ error: 'SERVICE_UNAVAILABLE' });
    }
    expect(attempts).toBe(2);
    await login.close();
    await authsec.close();
  });

  it('validates its options with TypeErrors', async () => {
    const h = await setup();
    const base = { authsec: h.authsec, oauth: h.oauth, sessions: h.sessions };
    expect(() => createToolLogin({ ...base, flow: 'implicit' as 'code' })).toThrow(TypeError);
    expect(() => createToolLogin({ ...base, callback: { host: '0.0.0.0' as '127.0.0.1' } })).toThrow(
      TypeError,
    );
    expect(() => createToolLogin({ ...base, callback: { port: 70000 } })).toThrow(TypeError);
    expect(() => createToolLogin({ ...base, remember: { file: '', masterKey: undefined! } })).toThrow(
      TypeError,
    );
  });

  it('takes a redirect URI served by the application: https, or http on loopback, and no listener', async () => {
    const h = await setup();
    const base = { authsec: h.authsec, oauth: h.oauth, sessions: h.sessions, logger: silentLogger };
    const refused: [string, string][] = [
      ['http://app.example/callback', 'must be https, or http on a loopback host'],
      ['ftp://127.0.0.1/callback', 'must be https, or http on a loopback host'],
      ['not a url', 'must be an absolute URL'],
      ['https://app.example/callback?x=1', 'no query, fragment or credentials'],
      ['https://app.example/callback#x', 'no query, fragment or credentials'],
      ['https://user:pw@app.example/callback', 'no query, fragment or credentials'],
    ];
    for (const [redirectUri, message] of refused)
      expect(() => createToolLogin({ ...base, callback: { redirectUri } }), redirectUri).toThrow(message);
    expect(() =>
      createToolLogin({ ...base, callback: { redirectUri: 'https://app.example/cb', port: 1 } }),
    ).toThrow('callback.redirectUri excludes callback.host, port and path');

    const external = createToolLogin({ ...base, callback: { redirectUri: 'https://app.example/auth/cb' } });
    expect(external.callbackRoute?.path).toBe('/auth/cb');
    const loopback = createToolLogin({ ...base, callback: { redirectUri: 'http://[::1]:4000/callback' } });
    expect(loopback.callbackRoute?.path).toBe('/callback');
    // The authorization request names the application's redirect URI; no loopback listener is started.
    const started = await harness(idp, { callback: { redirectUri: 'https://app.example/auth/cb' } });
    open.push(started);
    const body = await started.body('c1', 'oauth_start');
    expect(new URL(String(body.authorization_url)).searchParams.get('redirect_uri')).toBe(
      'https://app.example/auth/cb',
    );
    expect(h.login.callbackRoute).toBeUndefined();
    await Promise.all([external.close(), loopback.close()]);
  });
});
