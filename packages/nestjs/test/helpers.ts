import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { type AuthSec, createAuthSec, type IssuerOptions, silentLogger } from '@authsec/core';

type Jwk = NonNullable<IssuerOptions['keys']>[number];

export const ISSUER = 'https://idp.nestjs.test';
export const RESOURCE_URL = 'http://127.0.0.1:4999/mcp';

/** An engine trusting a local ES256 key, and a function signing tokens with it. */
export function createTestEngine(): { authsec: AuthSec; token: (claims: Record<string, unknown>) => string } {
  const kid = `nest-${randomUUID().slice(0, 8)}`;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as object), kid, alg: 'ES256', use: 'sig' } as Jwk;
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [jwk] }],
    audience: RESOURCE_URL,
    logger: silentLogger,
  });
  return {
    authsec,
    token(claims) {
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        iss: ISSUER,
        aud: RESOURCE_URL,
        iat: now,
        exp: now + 600,
        jti: randomUUID(),
        ...claims,
      };
      const input = `${b64({ alg: 'ES256', typ: 'JWT', kid })}.${b64(payload)}`;
      const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}
