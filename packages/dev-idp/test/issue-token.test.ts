import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type DevIdp, startDevIdp } from '../src/index.js';
import { authorize, tokenRequest, verifyAccessToken } from './helpers/flows.js';

const RESOURCE = 'http://127.0.0.1:1234/mcp';
let idp: DevIdp;

beforeAll(async () => {
  idp = await startDevIdp();
});

afterAll(async () => {
  await idp?.close();
});

describe('issueToken()', () => {
  it('signs an at+jwt that verifies against the JWKS, with the user claims and scopes', async () => {
    const token = await idp.issueToken('admin@acme-corp.example', { audience: RESOURCE });
    const { payload, protectedHeader } = await verifyAccessToken(idp, token, RESOURCE);
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(payload).toMatchObject({
      iss: idp.issuer,
      aud: RESOURCE,
      sub: idp.users[0]?.sub,
      client_id: 'authsec-dev',
      email: 'admin@acme-corp.example',
      name: 'Ada Admin',
      tenant_id: 'acme-corp',
      roles: ['admin', 'developer'],
      scope: 'read write admin',
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);
  });

  it('takes scopes, ttl, client id and extra claims, and finds users by sub', async () => {
    const analyst = idp.users.find((user) => user.email.startsWith('analyst'));
    const token = await idp.issueToken(String(analyst?.sub), {
      audience: 'urn:test',
      scopes: ['write'],
      ttlSeconds: 30,
      clientId: 'tests',
      extraClaims: { tenant_id: 'other-tenant', custom: 1 },
    });
    const { payload } = await verifyAccessToken(idp, token, 'urn:test');
    expect(payload).toMatchObject({
      scope: 'write',
      client_id: 'tests',
      tenant_id: 'other-tenant',
      custom: 1,
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(30);
  });

  it('mints an expired token for a negative ttl', async () => {
    const token = await idp.issueToken('analyst@acme-corp.example', { audience: RESOURCE, ttlSeconds: -120 });
    await expect(verifyAccessToken(idp, token, RESOURCE)).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
  });

  it('refuses an unknown user and a missing audience', async () => {
    await expect(idp.issueToken('nobody@example.com', { audience: RESOURCE })).rejects.toMatchObject({
      code: 'UNKNOWN_USER',
    });
    await expect(
      idp.issueToken('admin@acme-corp.example', {} as unknown as { audience: string }),
    ).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });
});

describe('rotateKeys()', () => {
  it('signs with a new key and keeps the previous one published', async () => {
    const before = await idp.issueToken('admin@acme-corp.example', { audience: RESOURCE });
    await idp.rotateKeys();
    const after = await idp.issueToken('admin@acme-corp.example', { audience: RESOURCE });
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);

    const jwks = (await (await fetch(idp.jwksUrl)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(4);
    const keySet = createRemoteJWKSet(new URL(idp.jwksUrl));
    await expect(jwtVerify(before, keySet, { audience: RESOURCE })).resolves.toBeTruthy();
    await expect(jwtVerify(after, keySet, { audience: RESOURCE })).resolves.toBeTruthy();

    // The provider signs with the new key too.
    const flow = await authorize(idp, {
      clientId: 'authsec-dev',
      redirectUri: 'http://127.0.0.1:4444/callback',
      resource: RESOURCE,
      scope: 'read',
      login: 'admin@acme-corp.example',
      password: 'admin-password',
    });
    const { body } = await tokenRequest(idp, {
      grant_type: 'authorization_code',
      client_id: 'authsec-dev',
      code: String(flow.location?.searchParams.get('code')),
      code_verifier: flow.verifier,
      redirect_uri: 'http://127.0.0.1:4444/callback',
    });
    expect(decodeProtectedHeader(String(body.access_token)).kid).toBe(decodeProtectedHeader(after).kid);

    // A second rotation drops the oldest generation.
    await idp.rotateKeys();
    const rotated = (await (await fetch(idp.jwksUrl)).json()) as { keys: Array<{ kid: string }> };
    expect(rotated.keys).toHaveLength(4);
    expect(rotated.keys.map((key) => key.kid)).not.toContain(decodeProtectedHeader(before).kid);
  });
});
