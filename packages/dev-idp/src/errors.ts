/**
 * Stable codes of {@link DevIdpError}. Tests and callers check the code, never the message.
 *
 * - `PRODUCTION_REFUSED`: `NODE_ENV` is `production`; the development IdP never starts there.
 * - `NON_LOOPBACK_HOST`: the host is not a loopback address and `allowNonLoopback` was not set.
 * - `INVALID_OPTIONS`: an option has the wrong shape or value (the message names it).
 * - `INVALID_USERS`: the user list (or users file) is malformed, or two users share an email or `sub`.
 * - `UNKNOWN_USER`: `issueToken()` was given a user that does not exist.
 */
export type DevIdpErrorCode =
  | 'PRODUCTION_REFUSED'
  | 'NON_LOOPBACK_HOST'
  | 'INVALID_OPTIONS'
  | 'INVALID_USERS'
  | 'UNKNOWN_USER';

const BRAND = Symbol.for('@authsec/dev-idp/DevIdpError');

/** The one error class of `@authsec/dev-idp`: thrown at start for bad options, never for a bad request. */
export class DevIdpError extends Error {
  /** Stable code; see {@link DevIdpErrorCode}. */
  readonly code: DevIdpErrorCode;
  readonly [BRAND] = true;

  constructor(code: DevIdpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DevIdpError';
    this.code = code;
  }
}

/** True for a {@link DevIdpError}, also one thrown by another installed copy of this package. */
export function isDevIdpError(value: unknown): value is DevIdpError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}
