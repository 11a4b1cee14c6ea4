import { AuthSecError } from '../errors.js';
import { type Principal, TENANT_ID_PATTERN } from '../types.js';
import { mapClaims } from './claims.js';
import type { ResolvedIssuer } from './config.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * The tenant a verified token acts in. A tenant the token names must match the tenant-id pattern, and equal the
 * issuer's bound tenant if it has one; a token naming none gets the issuer's bound tenant, else the default
 * tenant. Anything else is `TENANT_UNKNOWN`.
 */
export function resolveTenant(
  named: string | undefined,
  boundTenant: string | undefined,
  defaultTenant: string | undefined,
): string {
  if (named === undefined) {
    const tenant = boundTenant ?? defaultTenant;
    if (tenant === undefined) throw new AuthSecError('TENANT_UNKNOWN', 'Token names no tenant');
    return tenant;
  }
  if (!TENANT_ID_PATTERN.test(named))
    throw new AuthSecError('TENANT_UNKNOWN', 'Token names an invalid tenant id');
  if (boundTenant !== undefined && named !== boundTenant) {
    throw new AuthSecError('TENANT_UNKNOWN', "Token names a tenant other than its issuer's");
  }
  return named;
}

/**
 * Builds the frozen principal of a verified claim set. The claim set itself is frozen deeply: it is shared by
 * every request served from the cache.
 */
export function buildPrincipal(
  claims: Record<string, unknown>,
  issuer: ResolvedIssuer,
  defaultTenant: string | undefined,
  expiresAt: number,
): Principal {
  const mapped = mapClaims(claims, issuer.claims);
  const principal: Principal = {
    subject: mapped.subject,
    email: mapped.email,
    tenantId: resolveTenant(mapped.tenant, issuer.tenantId, defaultTenant),
    clientId: mapped.clientId,
    issuer: issuer.issuer,
    roles: mapped.roles,
    groups: mapped.groups,
    scopes: mapped.scopes,
    resources: mapped.resources,
    permissions: mapped.permissions,
    expiresAt,
    claims: deepFreeze(claims),
  };
  return Object.freeze(principal);
}
