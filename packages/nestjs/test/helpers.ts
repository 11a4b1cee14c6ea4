import { createSigner } from '@authsec/adapter-conformance';
import { type AuthSec, createAuthSec, silentLogger } from '@authsec/core';

export const ISSUER = 'https://idp.nestjs.test';
export const RESOURCE_URL = 'http://127.0.0.1:4999/mcp';

/** An engine trusting a local ES256 key, and a function signing tokens with it. */
export function createTestEngine(): { authsec: AuthSec; token: (claims: Record<string, unknown>) => string } {
  const signer = createSigner(ISSUER, { audience: RESOURCE_URL, expiresIn: 600 });
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: RESOURCE_URL,
    logger: silentLogger,
  });
  return { authsec, token: signer.sign };
}
