/**
 * Conformance mode: AuthSec with AUTHORIZATION OFF, for the official MCP conformance suite only.
 *
 * The suite (`@modelcontextprotocol/conformance server --url ...`) has no authorization scenarios and no way to
 * send a token, so every request here is treated as one fixed, frozen conformance principal. The mode is loud
 * about itself (a warning on every start) and is the ONLY place the suite's expected tools are registered.
 * Nothing here is exported by any published package or app.
 */
import { type AuthSec, createAuthSec, createLogger, type Principal } from '@authsec/core';
import type { SampleHttpOpened } from '@authsec/sample-tools';
import { conformanceKey } from './conformance-key.js';
import { conformanceTools } from './conformance-tools.js';

/** The warning every start of conformance mode logs. */
export const CONFORMANCE_WARNING = 'AUTHSEC CONFORMANCE MODE: AUTHORIZATION IS OFF';

/** The issuer the engine trusts and the metadata names; nothing is ever issued by it. */
export const CONFORMANCE_ISSUER = 'https://conformance.invalid';

/** The one caller every request is, in conformance mode. */
export const CONFORMANCE_PRINCIPAL: Principal = Object.freeze({
  subject: 'conformance-suite',
  email: undefined,
  tenantId: 'conformance',
  clientId: 'conformance-suite',
  issuer: CONFORMANCE_ISSUER,
  roles: Object.freeze([]) as readonly string[],
  groups: Object.freeze([]) as readonly string[],
  scopes: Object.freeze([]) as readonly string[],
  resources: Object.freeze([]) as readonly string[],
  permissions: Object.freeze([]) as readonly string[],
  expiresAt: Number.MAX_SAFE_INTEGER,
  claims: Object.freeze({}),
});

/**
 * An engine facade that authenticates every request, with or without a token, as {@link CONFORMANCE_PRINCIPAL},
 * and logs {@link CONFORMANCE_WARNING}. Everything else (tool registry, authorization, audit) is the real engine's.
 */
export function allowAllEngine(engine: AuthSec): AuthSec {
  engine.logger.warn(CONFORMANCE_WARNING, { mode: 'conformance', authorization: 'off' });
  return Object.freeze({
    ...engine,
    authenticate: async () => CONFORMANCE_PRINCIPAL,
    authenticateHeader: async () => CONFORMANCE_PRINCIPAL,
  }) as AuthSec;
}

/**
 * Opens conformance mode for an app's mount: an allow-all engine for `resourceUrl`, the conformance tools and the
 * placeholder issuer, in the shape every sample app's mount receives.
 */
export function openConformanceMode(resourceUrl: string): SampleHttpOpened {
  const engine = createAuthSec({
    issuers: [{ issuer: CONFORMANCE_ISSUER, keys: [conformanceKey()] }],
    audience: resourceUrl,
    logger: createLogger({ level: 'warn' }),
  });
  return {
    authsec: allowAllEngine(engine),
    tools: conformanceTools(),
    issuers: [CONFORMANCE_ISSUER],
    // The mount's MCP server closes the engine too; closing it twice is harmless.
    close: () => engine.close(),
  };
}
