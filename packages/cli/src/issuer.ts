import type { CommandContext, FlagSpec } from './command.js';
import { UsageError } from './errors.js';
import { quoted } from './parse.js';

/**
 * The issuer a person's subject belongs to. Grants, checks and sessions are bound to (issuer, subject): the
 * same `sub` from another trusted issuer is someone else. Group grants (`group:<name>`) belong to no issuer.
 */

const GROUP_PREFIX = 'group:';

/** `--issuer <url>`: the issuer of the subject, defaulted to the only `AUTHSEC_ISSUER`. */
export const issuerFlag: FlagSpec = {
  type: 'string',
  value: 'url',
  description:
    "The subject's issuer, exactly as its tokens carry it in iss. Default: the only issuer AUTHSEC_ISSUER lists; required when it lists several (or none)",
};

/** Throws a usage error unless `value` is an http(s) URL without spaces, as an issuer must be. */
export function checkIssuerUrl(value: string, what: string, command: string): string {
  let ok = value.length <= 2048 && !/[\s\p{Cc}]/u.test(value);
  if (ok) {
    try {
      const url = new URL(value);
      ok = url.protocol === 'https:' || url.protocol === 'http:';
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new UsageError(`${what}: ${quoted(value)} is not an http(s) issuer URL`, command);
  return value;
}

/**
 * The issuer of `subject` for this command: `--issuer` when given, else the only issuer `AUTHSEC_ISSUER`
 * lists. A usage error when it cannot be told (several issuers or none), or when one is given for a group.
 * `undefined` for a group.
 */
export function subjectIssuer(ctx: CommandContext, subject: string): string | undefined {
  const given = ctx.string('issuer');
  if (subject.startsWith(GROUP_PREFIX)) {
    if (given !== undefined) {
      throw new UsageError(`--issuer: grants to a group (${subject}) belong to no issuer`, ctx.command);
    }
    return undefined;
  }
  return tokenIssuer(ctx);
}

/**
 * The issuer of a token's subject: `--issuer` when given, else the only issuer `AUTHSEC_ISSUER` lists; a usage
 * error naming `--issuer` otherwise.
 */
export function tokenIssuer(ctx: CommandContext): string {
  const given = ctx.string('issuer');
  if (given !== undefined) return checkIssuerUrl(given, '--issuer', ctx.command);
  return defaultIssuer(ctx, 'the subject is bound to its issuer');
}

function defaultIssuer(ctx: CommandContext, why: string): string {
  const configured = ctx.issuers();
  if (configured.length === 1) return configured[0] as string;
  throw new UsageError(
    configured.length === 0
      ? `--issuer <url> is required: AUTHSEC_ISSUER is not set, and ${why}`
      : `--issuer <url> is required: AUTHSEC_ISSUER lists several issuers (${configured.join(', ')}), and ${why}`,
    ctx.command,
  );
}
