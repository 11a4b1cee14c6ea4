import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';

import { DevIdpError } from './errors.js';

/** A private JSON Web Key Set, as oidc-provider's `jwks` option takes it. */
export interface PrivateJwks {
  keys: JWK[];
}

/** Generates a fresh signing key set: one ES256 (P-256) key and one RS256 (2048-bit) key, each with a `kid`. */
export async function generateSigningKeys(): Promise<PrivateJwks> {
  const keys = await Promise.all(
    (['ES256', 'RS256'] as const).map(async (alg) => {
      const { privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
      const jwk = await exportJWK(privateKey);
      return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
    }),
  );
  return { keys };
}

function isEs256Key(jwk: JWK): boolean {
  return (
    jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.d === 'string' && (jwk.alg ?? 'ES256') === 'ES256'
  );
}

function isRsaKey(jwk: JWK): boolean {
  return jwk.kty === 'RSA' && typeof jwk.d === 'string';
}

/**
 * Checks a caller's private JWKS: it must hold at least one private P-256 key (access tokens are ES256).
 * Keys without a `kid` get their RFC 7638 thumbprint as `kid`, so tokens and the JWKS agree.
 */
export async function normalizePrivateJwks(jwks: unknown): Promise<PrivateJwks> {
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new DevIdpError('INVALID_OPTIONS', 'jwks must be a private JWK Set: { keys: [...] }');
  }
  const normalized: JWK[] = [];
  for (const [index, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null || typeof (key as JWK).kty !== 'string') {
      throw new DevIdpError('INVALID_OPTIONS', `jwks.keys[${index}] is not a JWK`);
    }
    const jwk = { ...(key as JWK) };
    if (typeof jwk.d !== 'string') {
      throw new DevIdpError('INVALID_OPTIONS', `jwks.keys[${index}] is not a private key (no "d")`);
    }
    jwk.kid ??= await calculateJwkThumbprint(jwk);
    normalized.push(jwk);
  }
  if (!normalized.some(isEs256Key)) {
    throw new DevIdpError(
      'INVALID_OPTIONS',
      'jwks must contain a private EC P-256 key: access tokens are signed with ES256',
    );
  }
  return { keys: normalized };
}

/** True when the set holds an RSA key, so ID tokens can keep oidc-provider's RS256 default. */
export function hasRsaKey(jwks: PrivateJwks): boolean {
  return jwks.keys.some(isRsaKey);
}

/** The key access tokens are signed with: the first private P-256 key of the set. */
export async function accessTokenSigningKey(
  jwks: PrivateJwks,
): Promise<{ key: Awaited<ReturnType<typeof importJWK>>; kid: string }> {
  const jwk = jwks.keys.find(isEs256Key);
  if (!jwk?.kid) throw new DevIdpError('INVALID_OPTIONS', 'no ES256 signing key');
  const key = await importJWK(jwk, 'ES256');
  return { key, kid: jwk.kid };
}
