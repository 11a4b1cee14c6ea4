/**
 * The `tokens` module: JWT verification with jose (issuer allow-list, local or remote keys, algorithm
 * allow-list, `aud`/`exp`/`nbf`/`iat` with bounded skew, a maximum lifetime, size limit), RFC 7662
 * introspection for opaque tokens, a bounded verified-token cache that never outlives `exp`, and claim mapping
 * with presets.
 *
 * @module
 */

export {
  CLAIM_FIELDS,
  type ClaimField,
  type ClaimSource,
  type CompiledClaimMapping,
  compileClaimMapping,
  type MappedClaims,
  mapClaims,
} from './claims.js';
export {
  DEFAULT_ALGORITHMS,
  type ResolvedIntrospection,
  type ResolvedIssuer,
  type ResolvedKeySource,
  type ResolvedTokenConfig,
  resolveTokenConfig,
} from './config.js';
export { resolveTenant } from './principal.js';
export { createTokenVerifier, type TokenVerifier } from './verifier.js';
