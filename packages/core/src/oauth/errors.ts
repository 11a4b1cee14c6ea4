import * as oauth from 'oauth4webapi';
import { AuthSecError, type AuthSecErrorCode, isAuthSecError } from '../errors.js';

/**
 * How failures of the OAuth client become {@link AuthSecError}s. One table, documented on
 * `createOAuthClient`:
 *
 * | what happened | code |
 * | --- | --- |
 * | the authorization server is unreachable, timed out, answered 5xx, `server_error`, `temporarily_unavailable`, or a malformed response | `SERVICE_UNAVAILABLE` |
 * | the grant presented is not (or no longer) valid: `invalid_grant` (code used, wrong verifier, refresh token revoked), an ID token whose nonce, audience, issuer or times are wrong, an unusable token type | `TOKEN_INVALID` |
 * | `expired_token` (the device code expired before the user finished) | `TOKEN_EXPIRED` |
 * | every other OAuth error (`access_denied`, `invalid_request`, `invalid_scope`, `invalid_target`, `invalid_client`, ...), a callback whose `state` or `iss` does not match | `BAD_REQUEST` |
 *
 * Messages name the operation and the OAuth `error` value, never a token, code or parameter value. The original
 * oauth4webapi error is *not* kept as `cause` (its `cause` may hold a token response body or the callback
 * parameters): `cause` is a plain `Error` carrying only its name and message.
 */

const SAFE_ERROR = /^[A-Za-z0-9_.:-]{1,64}$/;

const UNAVAILABLE_ERRORS = new Set(['server_error', 'temporarily_unavailable']);

/** The OAuth `error` value, if it is a plain token (anything else is not echoed). */
function safeErrorName(value: unknown): string {
  return typeof value === 'string' && SAFE_ERROR.test(value) ? value : 'error';
}

/** A cause that carries no response body, parameter or token: only the original's name, code and message. */
function summary(error: unknown): Error {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const s = new Error(
      `${error.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${error.message.slice(0, 300)}`,
    );
    s.name = 'OAuthFailure';
    return s;
  }
  return new Error('non-error value thrown');
}

function coded(code: AuthSecErrorCode, message: string, error: unknown, oauthError?: string): AuthSecError {
  return new AuthSecError(code, message, {
    cause: summary(error),
    ...(oauthError === undefined ? {} : { details: { oauthError } }),
  });
}

/** Maps an OAuth `error` value returned by the authorization server to our code. */
export function codeForOAuthError(error: string, status?: number): AuthSecErrorCode {
  if (status !== undefined && status >= 500) return 'SERVICE_UNAVAILABLE';
  if (UNAVAILABLE_ERRORS.has(error)) return 'SERVICE_UNAVAILABLE';
  if (error === 'invalid_grant') return 'TOKEN_INVALID';
  if (error === 'expired_token') return 'TOKEN_EXPIRED';
  return 'BAD_REQUEST';
}

function isNetworkFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return true;
  // fetch() rejects with a TypeError ("fetch failed") for refused connections, DNS failures and resets;
  // oauth4webapi's own argument errors are TypeErrors too, but carry an ERR_INVALID_ARG_* code.
  const code = (error as { code?: unknown }).code;
  return error instanceof TypeError && (typeof code !== 'string' || !code.startsWith('ERR_INVALID_ARG'));
}

/**
 * Turns anything the OAuth client caught during `operation` (a short phrase such as "the code exchange") into
 * an {@link AuthSecError}. AuthSec errors pass through.
 */
export function toOAuthError(error: unknown, operation: string): AuthSecError {
  if (isAuthSecError(error)) return error;
  if (error instanceof oauth.ResponseBodyError) {
    const name = safeErrorName(error.error);
    return coded(
      codeForOAuthError(name, error.status),
      `The authorization server refused ${operation} (${name})`,
      error,
      name,
    );
  }
  if (error instanceof oauth.AuthorizationResponseError) {
    const name = safeErrorName(error.error);
    return coded(codeForOAuthError(name), `The authorization server ended the login (${name})`, error, name);
  }
  if (error instanceof oauth.WWWAuthenticateChallengeError) {
    const status = error.response.status;
    const name = safeErrorName(error.cause[0]?.parameters.error ?? 'invalid_client');
    return coded(
      status >= 500 ? 'SERVICE_UNAVAILABLE' : codeForOAuthError(name),
      `The authorization server refused ${operation} (${name})`,
      error,
      name,
    );
  }
  if (error instanceof oauth.UnsupportedOperationError) {
    return coded(
      'TOKEN_INVALID',
      `The authorization server answered ${operation} with an unusable token`,
      error,
    );
  }
  if (error instanceof oauth.OperationProcessingError) {
    switch (error.code) {
      case oauth.JWT_CLAIM_COMPARISON:
      case oauth.JWT_TIMESTAMP_CHECK:
        return coded(
          'TOKEN_INVALID',
          `The ID token returned by ${operation} is not valid for this login`,
          error,
        );
      case oauth.HTTP_REQUEST_FORBIDDEN:
      case oauth.REQUEST_PROTOCOL_FORBIDDEN:
        return coded(
          'CONFIG_INVALID',
          `An authorization server endpoint is not allowed (https required)`,
          error,
        );
      default: {
        const status = error.cause instanceof Response ? error.cause.status : undefined;
        return coded(
          'SERVICE_UNAVAILABLE',
          `The authorization server gave an unusable answer to ${operation}${status === undefined ? '' : ` (HTTP ${status})`}`,
          error,
        );
      }
    }
  }
  if (isNetworkFailure(error)) {
    return coded(
      'SERVICE_UNAVAILABLE',
      `The authorization server could not be reached for ${operation}`,
      error,
    );
  }
  return coded('INTERNAL', `Unexpected failure during ${operation}`, error);
}
