import { AuthSecError, type AuthSecErrorCode, isAuthSecError } from '../errors.js';

interface JoseLike {
  readonly code?: unknown;
  readonly claim?: unknown;
  readonly reason?: unknown;
}

/**
 * Maps a failure of jose's `jwtVerify` to a coded error by jose's stable `code`. The jose error is not kept as
 * `cause` when it carries the claim set (claim validation errors do): only its code, claim and reason are.
 */
export function toTokenError(error: unknown): AuthSecError {
  if (isAuthSecError(error)) return error;
  const { code, claim, reason } = (typeof error === 'object' && error !== null ? error : {}) as JoseLike;
  let result: AuthSecErrorCode = 'TOKEN_INVALID';
  let message = 'Token is invalid';
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      result = 'TOKEN_EXPIRED';
      message = 'Token has expired';
      break;
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'aud') {
        result = 'TOKEN_AUDIENCE';
        message = 'Token was not issued for this resource';
      } else if (claim === 'iss') {
        result = 'TOKEN_ISSUER';
        message = 'Token issuer is not trusted';
      } else if (claim === 'nbf' && reason === 'check_failed') {
        // errors.ts documents TOKEN_EXPIRED as "exp has passed (or nbf is in the future)": outside its validity
        // window either way, and a client reacts the same (obtain a fresh token).
        result = 'TOKEN_EXPIRED';
        message = 'Token is not valid yet';
      } else {
        message = `Token claim '${typeof claim === 'string' ? claim : 'unknown'}' is missing or invalid`;
      }
      break;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      message = 'Token signature is invalid';
      break;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      message = 'Token algorithm is not allowed';
      break;
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      message = 'No key of the issuer matches the token';
      break;
    case 'ERR_JOSE_NOT_SUPPORTED':
      message = 'Token uses an unsupported algorithm or critical header';
      break;
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      message = 'Token is malformed';
      break;
    case 'ERR_JWK_INVALID':
    case 'ERR_JWKS_INVALID':
      message = 'The key for this token is unusable';
      break;
  }
  const cause =
    code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
      ? { code, claim, reason }
      : error;
  return new AuthSecError(result, message, { cause });
}
