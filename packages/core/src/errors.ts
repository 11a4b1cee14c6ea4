/**
 * One error class for the whole library, with stable codes.
 *
 * Every refusal and every failure that crosses a public API is an {@link AuthSecError} whose `code` comes from
 * {@link ERROR_CODES}. Tests and callers branch on the code, never on the message. Each code carries its HTTP
 * status, its OAuth/RFC 6750 `error` value and whether its details may be shown to the caller: 4xx details
 * are exposed, 5xx details never are (the client sees a generic message, the cause stays server-side).
 */

/** What one error code means on the wire. */
export interface ErrorCodeInfo {
  /** HTTP status an adapter answers with. */
  readonly status: number;
  /** RFC 6750 / RFC 6749 `error` value, or `undefined` when the refusal is not an OAuth error. */
  readonly oauthError: string | undefined;
  /** Whether the message may reach the caller. 5xx never do. */
  readonly expose: boolean;
}

/** The table of every error code. Adding a code here is the only way to create one. */
export const ERROR_CODES = {
  /** No bearer token was presented. 401 with a bare challenge (RFC 6750 §3.1: no `error`). */
  TOKEN_MISSING: { status: 401, oauthError: undefined, expose: true },
  /** The token is malformed, badly signed, of the wrong type or otherwise unacceptable. */
  TOKEN_INVALID: { status: 401, oauthError: 'invalid_token', expose: true },
  /** The token's `exp` has passed (or `nbf` is in the future). */
  TOKEN_EXPIRED: { status: 401, oauthError: 'invalid_token', expose: true },
  /** The token was not issued for this resource (`aud` missing or different). */
  TOKEN_AUDIENCE: { status: 401, oauthError: 'invalid_token', expose: true },
  /** The token's `iss` is not an allowed issuer. */
  TOKEN_ISSUER: { status: 401, oauthError: 'invalid_token', expose: true },
  /** More scopes alone would allow the call. 403 `insufficient_scope` naming every scope needed. */
  INSUFFICIENT_SCOPE: { status: 403, oauthError: 'insufficient_scope', expose: true },
  /** The caller is authenticated but not allowed, and more scopes would not help. */
  PERMISSION_DENIED: { status: 403, oauthError: undefined, expose: true },
  /**
   * A `when` condition of the tool's requirement does not hold for this call (the arguments, the caller or the
   * time). The message names the condition, never an argument's value.
   */
  CONDITION_FAILED: { status: 403, oauthError: undefined, expose: true },
  /** The tool needs its caller's confirmation (`approval: 'confirm'`), and the caller declined or cancelled. */
  NOT_CONFIRMED: { status: 403, oauthError: undefined, expose: true },
  /** The token names no tenant, an invalid one, or one that is unknown or disabled. */
  TENANT_UNKNOWN: { status: 401, oauthError: 'invalid_token', expose: true },
  /** The request itself is malformed (bad arguments, bad JSON). */
  BAD_REQUEST: { status: 400, oauthError: 'invalid_request', expose: true },
  /** A tool, service or session that does not exist (or is hidden from this caller). */
  NOT_FOUND: { status: 404, oauthError: undefined, expose: true },
  /** A dependency (key set, database, vault, introspection endpoint) is unreachable: fail closed. */
  SERVICE_UNAVAILABLE: { status: 503, oauthError: 'temporarily_unavailable', expose: false },
  /** Options are invalid or insecure. Thrown at start, never on a request. */
  CONFIG_INVALID: { status: 500, oauthError: 'server_error', expose: false },
  /** A bug or an unexpected failure. */
  INTERNAL: { status: 500, oauthError: 'server_error', expose: false },
} as const satisfies Record<string, ErrorCodeInfo>;

/** Every stable error code. */
export type AuthSecErrorCode = keyof typeof ERROR_CODES;

const BRAND = Symbol.for('@authsec/core/AuthSecError');

/** Extra, non-secret facts an error carries for adapters (never tokens, secrets or claim sets). */
export interface AuthSecErrorDetails {
  /** For `INSUFFICIENT_SCOPE`: every scope the call needs plus the scopes the token already holds. */
  readonly scopes?: readonly string[];
  /** Anything else safe to show; only exposed for 4xx codes. */
  readonly [key: string]: unknown;
}

/** Options of the {@link AuthSecError} constructor. */
export interface AuthSecErrorOptions {
  /** The low-level failure behind this one; kept server-side, never serialised to a client. */
  readonly cause?: unknown;
  /** Safe, structured details (see {@link AuthSecErrorDetails}). */
  readonly details?: AuthSecErrorDetails;
}

/** The one error class of AuthSec. Check with {@link isAuthSecError}, which survives duplicate installs. */
export class AuthSecError extends Error {
  /** Stable code; branch on this. */
  readonly code: AuthSecErrorCode;
  /** HTTP status for this code. */
  readonly status: number;
  /** Whether `message` may be shown to the caller. */
  readonly expose: boolean;
  /** Safe structured details. */
  readonly details: AuthSecErrorDetails;

  constructor(code: AuthSecErrorCode, message: string, options: AuthSecErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const info = ERROR_CODES[code];
    this.name = 'AuthSecError';
    this.code = code;
    this.status = info.status;
    this.expose = info.expose;
    this.details = Object.freeze({ ...(options.details ?? {}) });
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/**
 * True when `value` is an {@link AuthSecError}, including one created by another installed copy of this
 * package (where `instanceof` would say false).
 */
export function isAuthSecError(value: unknown): value is AuthSecError {
  return (
    typeof value === 'object' &&
    value !== null &&
    ((value as Record<symbol, unknown>)[BRAND] === true || value instanceof AuthSecError)
  );
}

/** Wraps any thrown value: AuthSec errors pass through, anything else becomes `INTERNAL` with `cause`. */
export function toAuthSecError(value: unknown): AuthSecError {
  if (isAuthSecError(value)) return value;
  return new AuthSecError('INTERNAL', 'Internal error', { cause: value });
}

/** What {@link toErrorResponse} needs beyond the error to build a correct challenge. */
export interface ErrorResponseOptions {
  /** RFC 9728 metadata URL, sent as `resource_metadata` in `WWW-Authenticate`. */
  readonly resourceMetadataUrl?: string;
  /** Scopes to advertise in a 401 challenge (the scopes needed to use the server at all). */
  readonly scopes?: readonly string[];
  /** Realm for the challenge; omitted when absent. */
  readonly realm?: string;
}

/** A framework-free HTTP error response. */
export interface ErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: {
    /** The OAuth `error`; absent exactly when the challenge carries none (no token was sent). */
    readonly error?: string;
    readonly error_description: string;
    readonly code: AuthSecErrorCode;
  };
}

// RFC 6750 §3: auth-param values are quoted-strings; '"' and '\' must not appear unescaped. We drop them
// instead of escaping, because several clients parse the header with naive regexes.
function quote(value: string): string {
  return `"${value.replace(/["\\\r\n]/g, '')}"`;
}

/**
 * Turns any error into `{ status, headers, body }`: the status of its code, a `WWW-Authenticate` challenge
 * for 401 and for `insufficient_scope` 403 (RFC 6750, with `resource_metadata` per RFC 9728), and a JSON body.
 * Details of 5xx errors are never exposed.
 */
export function toErrorResponse(error: unknown, options: ErrorResponseOptions = {}): ErrorResponse {
  const err = toAuthSecError(error);
  const info = ERROR_CODES[err.code];
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  const params: string[] = [];
  if (options.realm) params.push(`realm=${quote(options.realm)}`);
  const description = err.expose ? err.message : 'The server could not complete the request';
  // RFC 6750 §3.1: a malformed Authorization header (sent twice, merged) is `invalid_request` with a challenge.
  const authorizationHeader = err.code === 'BAD_REQUEST' && err.details.header === 'authorization';
  if (info.status === 401 || err.code === 'INSUFFICIENT_SCOPE' || authorizationHeader) {
    if (info.oauthError) params.push(`error=${quote(info.oauthError)}`);
    if (info.oauthError) params.push(`error_description=${quote(description)}`);
    const scopes = err.code === 'INSUFFICIENT_SCOPE' ? (err.details.scopes ?? []) : (options.scopes ?? []);
    if (scopes.length > 0) params.push(`scope=${quote(scopes.join(' '))}`);
    if (options.resourceMetadataUrl) params.push(`resource_metadata=${quote(options.resourceMetadataUrl)}`);
    headers['www-authenticate'] = params.length > 0 ? `Bearer ${params.join(', ')}` : 'Bearer';
  }
  if (info.status === 503) headers['retry-after'] = '5';
  const bodyError = info.oauthError ?? (info.status === 401 ? undefined : 'access_denied');
  return {
    status: info.status,
    headers,
    // The body says what the challenge says: no OAuth `error` when none was sent (a missing token, RFC 6750
    // §3.1), and `access_denied` only for refusals that are not OAuth errors (403, 404).
    body: {
      ...(bodyError === undefined ? {} : { error: bodyError }),
      error_description: description,
      code: err.code,
    },
  };
}
