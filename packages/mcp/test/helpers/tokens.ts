import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import type { IssuerOptions } from '@authsec/core';

type Jwk = NonNullable<IssuerOptions['keys']>[number];

/** A token issuer for tests: an ES256 key pair and a signer (node:crypto; no dependency on jose). */
export interface TestIssuer {
  readonly issuer: string;
  readonly publicJwk: Jwk;
  /** The engine's issuer entry for this issuer. */
  readonly options: IssuerOptions;
  /** Signs a token with default claims (iss, iat, exp in 1 h, jti) plus `claims`. */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): string;
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Creates a {@link TestIssuer}. */
export function createTestIssuer(issuer = 'https://idp.test.example'): TestIssuer {
  const kid = `k-${randomUUID().slice(0, 8)}`;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' }) as {
    privateKey: KeyObject;
    publicKey: KeyObject;
  };
  const publicJwk = {
    ...(publicKey.export({ format: 'jwk' }) as object),
    kid,
    alg: 'ES256',
    use: 'sig',
  } as Jwk;
  return {
    issuer,
    publicJwk,
    options: { issuer, keys: [publicJwk] },
    sign(claims, header = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload = { iss: issuer, iat: now, exp: now + 3600, jti: randomUUID(), ...claims };
      const input = `${b64url({ alg: 'ES256', typ: 'JWT', kid, ...header })}.${b64url(payload)}`;
      const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}
