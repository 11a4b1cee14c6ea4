/**
 * AuthSec as the `OAuthTokenVerifier` of the MCP SDK v2, for applications that keep the SDK's own bearer
 * middleware (`requireBearerAuth` of `@modelcontextprotocol/express`, or `verifyBearerToken` /
 * `requireBearerAuth` of `@modelcontextprotocol/server`): the engine's verification (issuers, audience,
 * tenancy, database-validated claims, scope hierarchy) behind the SDK's interface, and nothing else.
 */

import { type AuthSec, isAuthSecError, PRINCIPAL_EXTRA_KEY } from '@authsec/core';
import {
  type AuthInfo,
  OAuthError,
  OAuthErrorCode,
  type OAuthTokenVerifier,
} from '@modelcontextprotocol/server';

/** Options of {@link authSecTokenVerifier}. */
export interface AuthSecTokenVerifierOptions {
  /**
   * The `AuthInfo.resource` reported for every verified token: this server's canonical URL (the engine's
   * audience). Default: the token's `aud` when it names exactly one URL (a token for several audiences then
   * reports none, and `requireBearerAuth` with `expectedResource` refuses it: fail closed).
   */
  readonly resource?: string | URL;
}

/** The one audience of a verified token, as a URL; `undefined` when it has several or none. */
function audienceOf(aud: unknown): URL | undefined {
  const only = Array.isArray(aud) && aud.length === 1 ? aud[0] : aud;
  return typeof only === 'string' && URL.canParse(only) ? new URL(only) : undefined;
}

/**
 * The engine as an SDK v2 `OAuthTokenVerifier`: `requireBearerAuth({ verifier: authSecTokenVerifier(authsec) })`.
 * A verified token gives the SDK's `AuthInfo`: `scopes` with the implied scopes added (the SDK matches
 * `requiredScopes` exactly), `expiresAt`, `resource`, and `extra.principal`, the AuthSec principal the
 * protected v2 server (`protect`) reads to list and allow each caller's tools.
 *
 * A refused token (`TOKEN_INVALID`, `TOKEN_EXPIRED`, `TOKEN_AUDIENCE`, `TOKEN_ISSUER`, `TENANT_UNKNOWN`) is
 * the SDK's `OAuthError` `invalid_token`, which its middleware answers with 401 and a challenge. Anything else
 * (`SERVICE_UNAVAILABLE`: a key set or the database unreachable) is rethrown as it is, and the SDK's middleware
 * answers any error that is not an `OAuthError` with 500 `server_error`; AuthSec's own adapters answer the same
 * outage with 503 and `Retry-After`. Misuse is a `TypeError` here.
 */
export function authSecTokenVerifier(
  authsec: AuthSec,
  options: AuthSecTokenVerifierOptions = {},
): OAuthTokenVerifier {
  if (typeof authsec?.authenticate !== 'function')
    throw new TypeError('authSecTokenVerifier: authsec must be an engine from createAuthSec()');
  const { resource } = options;
  if (resource !== undefined && !URL.canParse(String(resource)))
    throw new TypeError('authSecTokenVerifier: resource must be a URL');
  const fixed = resource === undefined ? undefined : new URL(String(resource));
  return {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      let principal: Awaited<ReturnType<AuthSec['authenticate']>>;
      try {
        principal = await authsec.authenticate(token);
      } catch (error) {
        // Every 401 code is a refusal of this token; its message is one AuthSec shows callers (`expose`).
        if (isAuthSecError(error) && error.status === 401)
          throw new OAuthError(OAuthErrorCode.InvalidToken, error.message);
        throw error;
      }
      const audience = fixed ?? audienceOf(principal.claims.aud);
      return {
        token,
        clientId: principal.clientId ?? '',
        scopes: [...principal.scopes],
        expiresAt: principal.expiresAt,
        ...(audience === undefined ? {} : { resource: audience }),
        extra: { [PRINCIPAL_EXTRA_KEY]: principal },
      };
    },
  };
}
