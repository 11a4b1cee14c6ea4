import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';

/**
 * A throwaway public key for the conformance engine's issuer: the engine needs one, and no token is ever
 * verified in conformance mode.
 */
export function conformanceKey(): JsonWebKey {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...publicKey.export({ format: 'jwk' }), kid: 'conformance', alg: 'ES256', use: 'sig' };
}
