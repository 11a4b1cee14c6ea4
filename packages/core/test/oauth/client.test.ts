import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEMO_USERS, type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthSec } from '../../src/engine.js';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import {
  createOAuthClient,
  generateCodeVerifier,
  generateNonce,
  type OAuthClient,
  type OAuthClientOptions,
  type TokenSet,
} from '../../src/oauth/index.js';
import type { Logger } from '../../src/types.js';
import { approveDevice, signIn } from './helpers/browser.js';

const RESOURCE = 'http://127.0.0.1:39999/mcp';
const REDIRECT = 'http://127.0.0.1:51234/callback';
const SCOPES = ['openid', 'offline_access', 'read', 'write', 'admin'];
const admin = DEMO_USERS.find((u) => u.roles?.includes('admin'))!;
const analyst = DEMO_USERS.find((u) => u.roles?.includes('analyst'))!;

let idp: DevIdp;
let client: OAuthClient;

function options(extra: Partial<OAuthClientOptions> = {}): OAuthClientOptions {
  return {
    issuer: idp.issuer,
    clientId: 'authsec-dev',
    resource: RESOURCE,
    scopes: SCOPES,
    redirectUri: REDIRECT,
    logger: silentLogger,
    ...extra,
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isAuthSecError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a rejection');
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

/** A full browser login: authorization URL, sign-in form, redirect back. */
async function login(user = admin, oauth = client) {
  const state = generateNonce();
  const nonce = generateNonce();
  const codeVerifier = generateCodeVerifier();
  const url = await oauth.authorizationRequest({ state, nonce, codeVerifier });
  const callback = await signIn(url, user.email, user.password);
  return { url, callback, state, nonce, codeVerifier };
}

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A fetch that rewrites the metadata document (to test what discovery refuses). */
function metadataFetch(change: (doc: Record<string, unknown>) => void): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).includes('/.well-known/')) return response;
    const doc = (await response.json()) as Record<string, unknown>;
    change(doc);
    return new Response(JSON.stringify(doc), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  };
}

beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
  client = await createOAuthClient(options());
});

afterAll(async () => {
  await idp?.close();
});

describe('discovery', () => {
  it('discovers the dev IdP and what it supports', () => {
    expect(client.issuer).toBe(idp.issuer);
    expect(client.clientId).toBe('authsec-dev');
    expect(client.resource).toBe(RESOURCE);
    expect(client.scopes).toEqual(SCOPES);
    expect(client.supportsAuthorizationCode).toBe(true);
    expect(client.supportsDeviceFlow).toBe(true);
    expect(client.supportsRevocation).toBe(true);
    expect(Object.isFrozen(client)).toBe(true);
  });

  it('falls back to RFC 8414 metadata when OpenID discovery is missing', async () => {
    const seen: string[] = [];
    const oauth = await createOAuthClient(
      options({
        fetch: async (input, init) => {
          seen.push(new URL(String(input)).pathname);
          if (String(input).includes('openid-configuration')) return new Response('no', { status: 404 });
          return fetch(input, init);
        },
      }),
    );
    expect(oauth.supportsAuthorizationCode).toBe(true);
    expect(seen).toEqual(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']);
  });

  it('refuses metadata that names another issuer', async () => {
    const port = new URL(idp.issuer).port;
    expect(await codeOf(createOAuthClient(options({ issuer: `http://localhost:${port}` })))).toBe(
      'CONFIG_INVALID',
    );
  });

  it('refuses plain http off loopback, and bad options, at creation', async () => {
    expect(await codeOf(createOAuthClient(options({ issuer: 'http://idp.example.com' })))).toBe(
      'CONFIG_INVALID',
    );
    expect(await codeOf(createOAuthClient(options({ clientId: '' })))).toBe('CONFIG_INVALID');
    expect(await codeOf(createOAuthClient(options({ scopes: ['read write'] })))).toBe('CONFIG_INVALID');
    expect(await codeOf(createOAuthClient(options({ resource: 'http://x/mcp#frag' })))).toBe(
      'CONFIG_INVALID',
    );
    expect(await codeOf(createOAuthClient(options({ timeoutMs: 0 })))).toBe('CONFIG_INVALID');
  });

  it('refuses an endpoint off the URL policy and a server without S256', async () => {
    const offLoopback = metadataFetch((doc) => {
      doc.token_endpoint = 'http://idp.example.com/token';
    });
    expect(await codeOf(createOAuthClient(options({ fetch: offLoopback })))).toBe('CONFIG_INVALID');
    const plainOnly = metadataFetch((doc) => {
      doc.code_challenge_methods_supported = ['plain'];
    });
    expect(await codeOf(createOAuthClient(options({ fetch: plainOnly })))).toBe('CONFIG_INVALID');
  });

  it('warns when the server does not advertise PKCE or no resource is configured', async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => void warnings.push(message) };
    const silent = metadataFetch((doc) => {
      delete doc.code_challenge_methods_supported;
      delete doc.revocation_endpoint;
      delete doc.device_authorization_endpoint;
    });
    const oauth = await createOAuthClient(options({ fetch: silent, logger, resource: undefined }));
    expect(warnings.some((w) => w.includes('PKCE'))).toBe(true);
    expect(warnings.some((w) => w.includes('resource'))).toBe(true);
    expect(oauth.supportsRevocation).toBe(false);
    expect(oauth.supportsDeviceFlow).toBe(false);
    expect(await oauth.revoke('anything')).toBe(false);
    expect(await codeOf(oauth.deviceAuthorization())).toBe('BAD_REQUEST');
  });

  it('is SERVICE_UNAVAILABLE when the authorization server is down or failing', async () => {
    const port = await unusedPort();
    expect(await codeOf(createOAuthClient(options({ issuer: `http://127.0.0.1:${port}` })))).toBe(
      'SERVICE_UNAVAILABLE',
    );
    const failing: typeof fetch = async () => new Response('oops', { status: 503 });
    expect(await codeOf(createOAuthClient(options({ fetch: failing })))).toBe('SERVICE_UNAVAILABLE');
    const slow: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    expect(await codeOf(createOAuthClient(options({ fetch: slow, timeoutMs: 50 })))).toBe(
      'SERVICE_UNAVAILABLE',
    );
  });
});

describe('authorization code + PKCE', () => {
  it('builds an S256 authorization request with state, nonce, scope and resource', async () => {
    const codeVerifier = generateCodeVerifier();
    const url = await client.authorizationRequest({ state: 'st', nonce: 'nn', codeVerifier });
    const params = url.searchParams;
    expect(`${url.origin}${url.pathname}`).toBe(`${idp.issuer}/auth`);
    expect(params.get('response_type')).toBe('code');
    expect(params.get('client_id')).toBe('authsec-dev');
    expect(params.get('redirect_uri')).toBe(REDIRECT);
    expect(params.get('scope')).toBe(SCOPES.join(' '));
    expect(params.get('state')).toBe('st');
    expect(params.get('nonce')).toBe('nn');
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('resource')).toBe(RESOURCE);
    expect(url.href).not.toContain(codeVerifier);
  });

  it('logs in through the form, exchanges the code, and the access token verifies for the resource', async () => {
    const flow = await login();
    expect(`${flow.callback.origin}${flow.callback.pathname}`).toBe(REDIRECT);
    expect(flow.callback.searchParams.get('state')).toBe(flow.state);
    const before = Date.now();
    const tokens = await client.exchangeCode({
      callbackUrl: flow.callback,
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
    });
    expect(tokens.tokenType).toBe('bearer');
    expect(typeof tokens.refreshToken).toBe('string');
    expect(typeof tokens.idToken).toBe('string');
    expect(tokens.scope?.split(' ').sort()).toEqual(['admin', 'read', 'write']);
    expect(tokens.expiresAt).toBeGreaterThanOrEqual(before + 599_000);
    expect(tokens.expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);

    const engine = createAuthSec({ issuers: [idp.issuer], audience: RESOURCE, logger: silentLogger });
    const principal = await engine.authenticate(tokens.accessToken);
    expect(principal).toMatchObject({ email: admin.email, tenantId: 'acme-corp' });
    expect(principal.roles).toContain('admin');
    await engine.close();
  });

  it('accepts the callback parameters instead of the URL', async () => {
    const flow = await login(analyst);
    const tokens = await client.exchangeCode({
      params: Object.fromEntries(flow.callback.searchParams),
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
      redirectUri: REDIRECT,
    });
    expect(tokens.scope).toBe('read');
  });

  it('refuses a callback with another state, and the code stays unused', async () => {
    const flow = await login();
    const wrong = await errorOf(
      client.exchangeCode({
        callbackUrl: flow.callback,
        state: generateNonce(),
        nonce: flow.nonce,
        codeVerifier: flow.codeVerifier,
      }),
    );
    expect(isAuthSecError(wrong) && wrong.code).toBe('BAD_REQUEST');
    expect(wrong.cause).toBeUndefined();
    const code = flow.callback.searchParams.get('code')!;
    expect(wrong.message).not.toContain(code);
    // The refused callback never reached the token endpoint.
    const tokens = await client.exchangeCode({
      callbackUrl: flow.callback,
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
    });
    expect(tokens.accessToken).toBeTruthy();
  });

  it('refuses a callback without state or from another issuer', async () => {
    const flow = await login();
    const noState = new URL(flow.callback);
    noState.searchParams.delete('state');
    const input = { state: flow.state, nonce: flow.nonce, codeVerifier: flow.codeVerifier };
    expect(await codeOf(client.exchangeCode({ ...input, callbackUrl: noState }))).toBe('BAD_REQUEST');
    const otherIss = new URL(flow.callback);
    otherIss.searchParams.set('iss', 'http://127.0.0.1:1');
    expect(await codeOf(client.exchangeCode({ ...input, callbackUrl: otherIss }))).toBe('BAD_REQUEST');
  });

  it('reports an error callback (access_denied) as BAD_REQUEST', async () => {
    const state = generateNonce();
    const callback = new URL(REDIRECT);
    callback.searchParams.set('error', 'access_denied');
    callback.searchParams.set('state', state);
    callback.searchParams.set('iss', idp.issuer);
    const error = await errorOf(
      client.exchangeCode({ callbackUrl: callback, state, codeVerifier: 'x'.repeat(43) }),
    );
    expect(isAuthSecError(error) && error.code).toBe('BAD_REQUEST');
    expect(isAuthSecError(error) && error.details.oauthError).toBe('access_denied');
  });

  it('refuses a replayed code, a wrong verifier and a wrong nonce (TOKEN_INVALID)', async () => {
    const flow = await login();
    const input = {
      callbackUrl: flow.callback,
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
    };
    await client.exchangeCode(input);
    const replay = await errorOf(client.exchangeCode(input));
    expect(isAuthSecError(replay) && replay.code).toBe('TOKEN_INVALID');
    expect(replay.message).not.toContain(flow.callback.searchParams.get('code')!);

    const second = await login();
    expect(
      await codeOf(
        client.exchangeCode({
          callbackUrl: second.callback,
          state: second.state,
          nonce: second.nonce,
          codeVerifier: generateCodeVerifier(),
        }),
      ),
    ).toBe('TOKEN_INVALID');

    const third = await login();
    expect(
      await codeOf(
        client.exchangeCode({
          callbackUrl: third.callback,
          state: third.state,
          nonce: generateNonce(),
          codeVerifier: third.codeVerifier,
        }),
      ),
    ).toBe('TOKEN_INVALID');
  });

  it('uses the injected clock for expiresAt', async () => {
    const offset = 3_600_000;
    const oauth = await createOAuthClient(options({ clock: () => Date.now() + offset }));
    const flow = await login(admin, oauth);
    const tokens = await oauth.exchangeCode({
      callbackUrl: flow.callback,
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
    });
    expect(tokens.expiresAt).toBeGreaterThan(Date.now() + offset + 590_000);
  });
});

describe('refresh and revocation', () => {
  async function freshTokens(): Promise<TokenSet> {
    const flow = await login();
    return client.exchangeCode({
      callbackUrl: flow.callback,
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
    });
  }

  it('refreshes, rotates the refresh token, and refuses the old one (TOKEN_INVALID)', async () => {
    const tokens = await freshTokens();
    const refreshed = await client.refresh(tokens.refreshToken!);
    expect(refreshed.accessToken).not.toBe(tokens.accessToken);
    expect(refreshed.refreshToken).toBeTruthy();
    expect(refreshed.refreshToken).not.toBe(tokens.refreshToken);
    const engine = createAuthSec({ issuers: [idp.issuer], audience: RESOURCE, logger: silentLogger });
    expect((await engine.authenticate(refreshed.accessToken)).email).toBe(admin.email);
    await engine.close();

    const reused = await errorOf(client.refresh(tokens.refreshToken!));
    expect(isAuthSecError(reused) && reused.code).toBe('TOKEN_INVALID');
    expect(reused.message).not.toContain(tokens.refreshToken!);
  });

  it('revokes a refresh token, which then no longer refreshes', async () => {
    const tokens = await freshTokens();
    expect(await client.revoke(tokens.refreshToken!, 'refresh_token')).toBe(true);
    expect(await codeOf(client.refresh(tokens.refreshToken!))).toBe('TOKEN_INVALID');
    // oidc-provider cannot revoke its JWT access tokens: unsupported_token_type reads as "not revoked".
    expect(await client.revoke(tokens.accessToken, 'access_token')).toBe(false);
  });

  it('is SERVICE_UNAVAILABLE when the server goes down after discovery', async () => {
    const other = await startDevIdp({ logger: silentLogger });
    const oauth = await createOAuthClient(options({ issuer: other.issuer }));
    const flow = await login(admin, oauth);
    await other.close();
    expect(
      await codeOf(
        oauth.exchangeCode({
          callbackUrl: flow.callback,
          state: flow.state,
          nonce: flow.nonce,
          codeVerifier: flow.codeVerifier,
        }),
      ),
    ).toBe('SERVICE_UNAVAILABLE');
    expect(await codeOf(oauth.refresh('some-refresh-token'))).toBe('SERVICE_UNAVAILABLE');
    expect(await codeOf(oauth.revoke('some-token'))).toBe('SERVICE_UNAVAILABLE');
  });

  it('is SERVICE_UNAVAILABLE on a 5xx answer, whatever its body', async () => {
    let fail = false;
    const oauth = await createOAuthClient(
      options({
        fetch: async (input, init) => {
          if (fail) {
            return new Response(JSON.stringify({ error: 'invalid_grant' }), {
              status: 502,
              headers: { 'content-type': 'application/json' },
            });
          }
          return fetch(input, init);
        },
      }),
    );
    fail = true;
    expect(await codeOf(oauth.refresh('some-refresh-token'))).toBe('SERVICE_UNAVAILABLE');
  });
});

describe('device authorization grant', () => {
  it('goes from user code to sign-in to tokens, polling while pending', async () => {
    const device = await client.deviceAuthorization();
    expect(device.verificationUri).toBe(`${idp.issuer}/device`);
    expect(device.userCode).toBeTruthy();
    expect(device.interval).toBeGreaterThan(0);
    expect(device.expiresAt).toBeGreaterThan(Date.now());
    const polling = client.pollDeviceToken(device.deviceCode, {
      interval: device.interval,
      expiresAt: device.expiresAt,
    });
    const page = await approveDevice(
      device.verificationUri,
      device.userCode,
      analyst.email,
      analyst.password,
    );
    expect(page).toContain('Signed in');
    const tokens = await polling;
    expect(tokens.scope).toBe('read');
    expect(tokens.refreshToken).toBeTruthy();
    const engine = createAuthSec({ issuers: [idp.issuer], audience: RESOURCE, logger: silentLogger });
    expect((await engine.authenticate(tokens.accessToken)).email).toBe(analyst.email);
    await engine.close();
  });

  it('stops polling when aborted, and gives up at expiresAt', async () => {
    const device = await client.deviceAuthorization();
    const controller = new AbortController();
    const polling = client.pollDeviceToken(device.deviceCode, { signal: controller.signal, interval: 0.05 });
    setTimeout(() => controller.abort(), 20);
    expect((await errorOf(polling)).name).toBe('AbortError');
    expect(
      await codeOf(client.pollDeviceToken(device.deviceCode, { interval: 0.01, expiresAt: Date.now() - 1 })),
    ).toBe('TOKEN_EXPIRED');
  });

  it('reports a refused device login as BAD_REQUEST (access_denied)', async () => {
    const denying: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/token')) {
        return new Response(JSON.stringify({ error: 'access_denied' }), {
          status: 400,
          headers: { 'content-type': 'application/json' },
        });
      }
      return fetch(input, init);
    };
    const oauth = await createOAuthClient(options({ fetch: denying }));
    const device = await oauth.deviceAuthorization();
    const error = await errorOf(oauth.pollDeviceToken(device.deviceCode, { interval: 0.01 }));
    expect(isAuthSecError(error) && error.code).toBe('BAD_REQUEST');
    expect(error.message).not.toContain(device.deviceCode);
  });

  it('keeps polling through authorization_pending and slow_down', async () => {
    const answers = ['authorization_pending', 'slow_down'];
    let calls = 0;
    const scripted: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/token')) {
        calls++;
        const error = answers.shift();
        if (error) {
          return new Response(JSON.stringify({ error }), {
            status: 400,
            headers: { 'content-type': 'application/json' },
          });
        }
        return new Response(
          JSON.stringify({ access_token: 'opaque-access', token_type: 'Bearer', expires_in: 60 }),
          { status: 200, headers: { 'content-type': 'application/json' } },
        );
      }
      return fetch(input, init);
    };
    const oauth = await createOAuthClient(options({ fetch: scripted, scopes: ['read'] }));
    const started = Date.now();
    const tokens = await oauth.pollDeviceToken('device-code', { interval: 0.01 });
    expect(calls).toBe(3);
    expect(tokens.accessToken).toBe('opaque-access');
    // slow_down added five seconds to the interval.
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
  });
});
