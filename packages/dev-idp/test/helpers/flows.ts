import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { expect } from 'vitest';

import type { DevIdp } from '../../src/index.js';
import { Browser, formOf, pkcePair } from './browser.js';

/** What {@link authorize} needs. */
export interface AuthorizeInput {
  clientId: string;
  redirectUri: string;
  scope: string;
  resource?: string;
  login: string;
  password: string;
  /** Overrides or removes (undefined) query parameters of the authorization request. */
  params?: Record<string, string | undefined>;
}

/** The authorization request URL, with a fresh PKCE pair and state. */
export function authorizationUrl(idp: DevIdp, input: Omit<AuthorizeInput, 'login' | 'password'>) {
  const { verifier, challenge } = pkcePair();
  const state = Math.random().toString(36).slice(2);
  const url = new URL('/auth', idp.issuer);
  const params: Record<string, string | undefined> = {
    client_id: input.clientId,
    response_type: 'code',
    redirect_uri: input.redirectUri,
    scope: input.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: input.resource,
    ...input.params,
  };
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  return { url, verifier, state };
}

/**
 * Drives the browser part of the authorization code flow: authorization request, sign-in form, redirect back.
 * Returns the redirect to the client (with `code` or `error`) and the PKCE verifier.
 */
export async function authorize(idp: DevIdp, input: AuthorizeInput, browser = new Browser()) {
  const { url, verifier, state } = authorizationUrl(idp, input);
  const first = await browser.follow(await browser.request(url), url, idp.issuer);
  expect(first.response.status).toBe(200);
  const html = await first.response.text();
  const form = formOf(html);
  expect([...form.fields.keys()].sort()).toEqual(['login', 'password']);
  const action = new URL(form.action, first.url);
  const posted = await browser.post(action, { login: input.login, password: input.password });
  const end = await browser.follow(posted, action, idp.issuer);
  return { ...end, verifier, state, browser, loginPage: html };
}

/** POSTs to the token endpoint; returns status and JSON body. */
export async function tokenRequest(
  idp: DevIdp,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) body.set(key, value);
  const response = await fetch(new URL('/token', idp.issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Verifies an access token against the IdP's JWKS as a resource server would. */
export async function verifyAccessToken(idp: DevIdp, token: unknown, audience: string) {
  expect(typeof token).toBe('string');
  const jwks = createRemoteJWKSet(new URL(idp.jwksUrl));
  const result = await jwtVerify<JWTPayload & Record<string, unknown>>(String(token), jwks, {
    issuer: idp.issuer,
    audience,
    typ: 'at+jwt',
  });
  return result;
}
