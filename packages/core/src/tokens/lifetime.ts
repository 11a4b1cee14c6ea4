import { AuthSecError } from '../errors.js';

/** Default of `maxTokenLifetimeSeconds`: 24 hours. */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;

/** What {@link checkTokenLifetime} measures a token against. All values in seconds. */
export interface LifetimeCheck {
  /** Seconds since the epoch, by the injected clock. */
  readonly now: number;
  readonly clockToleranceSeconds: number;
  readonly maxTokenLifetimeSeconds: number;
}

function invalid(message: string): never {
  throw new AuthSecError('TOKEN_INVALID', message);
}

/**
 * Refuses (`TOKEN_INVALID`) a token whose validity window is longer than the maximum, or that claims to have
 * been issued in the future. `exp` must already be known to be a number that has not passed (jose and the
 * introspection check do that); `iat` is optional.
 *
 * - `iat`, when present, is a finite number no more than the clock tolerance ahead of `now`.
 * - `exp - iat` (the lifetime the issuer gave) is at most the maximum.
 * - `exp - now` (what is left) is at most the maximum plus the clock tolerance, so a token without `iat`, or
 *   one whose `iat` was backdated, is measured too.
 *
 * A stolen token stays usable until its `exp` whatever is revoked upstream; a token valid for years (or with an
 * `exp` of 1e20, or of 1e400, which JSON parses as `Infinity`) would also be cached as long.
 */
export function checkTokenLifetime(exp: number, iat: unknown, check: LifetimeCheck): void {
  const { now, clockToleranceSeconds, maxTokenLifetimeSeconds } = check;
  if (!Number.isFinite(exp)) invalid("Token claim 'exp' is invalid");
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) invalid("Token claim 'iat' is invalid");
    if (iat > now + clockToleranceSeconds) invalid("Token claim 'iat' is in the future");
    if (exp - iat > maxTokenLifetimeSeconds) {
      invalid(`Token lifetime exceeds the maximum of ${maxTokenLifetimeSeconds} seconds`);
    }
  }
  if (exp - now > maxTokenLifetimeSeconds + clockToleranceSeconds) {
    invalid(`Token lifetime exceeds the maximum of ${maxTokenLifetimeSeconds} seconds`);
  }
}
