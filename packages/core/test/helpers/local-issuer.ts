import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

/** An issuer with one ES256 key, for engines configured with local keys. */
export interface LocalIssuer {
  readonly issuer: string;
  readonly publicJwk: JWK;
  /** A token for `claims.sub`, five minutes long, for `audience` (and `issuer`, when another one is named). */
  token(claims: Record<string, unknown>, audience: string, issuer?: string): Promise<string>;
}

/** Creates a {@link LocalIssuer} (kid `k1`). */
export async function createLocalIssuer(issuer: string): Promise<LocalIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  return {
    issuer,
    publicJwk,
    token: (claims, audience, other = issuer) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(other)
        .setAudience(audience)
        .setSubject(String(claims.sub ?? 'user-1'))
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
        .sign(privateKey),
  };
}
