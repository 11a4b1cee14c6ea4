import { AuthSecError } from '../errors.js';
import type { Logger } from '../types.js';
import type { ResolvedIntrospection } from './config.js';
import { FetchFailure, fetchJson, type HttpContext, isJsonObject } from './http.js';
import { checkTokenLifetime } from './lifetime.js';

/** What {@link introspectToken} checks an active response against. */
export interface IntrospectionCheck {
  readonly issuer: string;
  readonly audience: readonly string[];
  readonly clockToleranceSeconds: number;
  /** Longest validity window accepted, seconds (see `checkTokenLifetime`). */
  readonly maxTokenLifetimeSeconds: number;
  /** Seconds since the epoch. */
  readonly now: number;
}

/**
 * Asks the issuer's RFC 7662 endpoint about an opaque token (`POST token=...&token_type_hint=access_token`,
 * HTTP Basic client authentication) and checks the answer: `active` must be `true` (else `TOKEN_INVALID`);
 * `iss`, when given, must be the issuer (`TOKEN_ISSUER`); `aud` must include an accepted audience
 * (`TOKEN_AUDIENCE`); `exp` is required and, like `nbf`, checked with the clock tolerance (`TOKEN_EXPIRED`);
 * a validity window longer than the maximum lifetime, or an `iat` in the future, is `TOKEN_INVALID`.
 * Any failure to get an answer (unreachable, timeout, non-200, not JSON) is `SERVICE_UNAVAILABLE`.
 * Returns the response as the token's claim set.
 */
export async function introspectToken(
  token: string,
  introspection: ResolvedIntrospection,
  check: IntrospectionCheck,
  http: HttpContext,
  logger: Logger,
): Promise<Record<string, unknown>> {
  let response: unknown;
  try {
    response = await fetchJson(introspection.endpoint, http, {
      method: 'POST',
      headers: {
        authorization: introspection.authorization,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
    });
  } catch (error) {
    const status = error instanceof FetchFailure ? error.status : undefined;
    const fields = {
      endpoint: introspection.endpoint,
      status,
      error: error instanceof Error ? error.message : String(error),
    };
    // A 4xx means our own client credentials or request are wrong: an operator must act.
    if (status !== undefined && status < 500) logger.error('Token introspection refused our request', fields);
    else logger.warn('Token introspection failed', fields);
    throw new AuthSecError('SERVICE_UNAVAILABLE', 'Token introspection is unavailable', { cause: error });
  }
  if (!isJsonObject(response)) {
    throw new AuthSecError(
      'SERVICE_UNAVAILABLE',
      'Token introspection answered with something other than an object',
    );
  }
  if (response.active !== true) throw new AuthSecError('TOKEN_INVALID', 'Token is not active');
  if (response.iss !== undefined && response.iss !== check.issuer) {
    throw new AuthSecError('TOKEN_ISSUER', 'Token issuer is not trusted');
  }
  const aud = response.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((value) => typeof value === 'string' && check.audience.includes(value))) {
    throw new AuthSecError('TOKEN_AUDIENCE', 'Token was not issued for this resource');
  }
  const { exp, nbf } = response;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new AuthSecError('TOKEN_INVALID', "Token claim 'exp' is missing or invalid");
  }
  if (exp <= check.now - check.clockToleranceSeconds)
    throw new AuthSecError('TOKEN_EXPIRED', 'Token has expired');
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) {
      throw new AuthSecError('TOKEN_INVALID', "Token claim 'nbf' is invalid");
    }
    if (nbf > check.now + check.clockToleranceSeconds)
      throw new AuthSecError('TOKEN_EXPIRED', 'Token is not valid yet');
  }
  checkTokenLifetime(exp, response.iat, check);
  return response;
}
