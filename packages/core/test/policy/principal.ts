import type { Principal } from '../../src/types.js';

/** The claim arrays a test principal may set. */
export interface TestClaims {
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly resources?: readonly string[];
  readonly permissions?: readonly string[];
}

/** A frozen principal of tenant `acme-corp` with the given claims (everything else empty). */
export function principal(claims: TestClaims = {}): Principal {
  return Object.freeze({
    subject: 'user-1',
    email: 'john@company.com',
    tenantId: 'acme-corp',
    clientId: undefined,
    issuer: 'https://idp.test',
    roles: Object.freeze([...(claims.roles ?? [])]),
    groups: Object.freeze([...(claims.groups ?? [])]),
    scopes: Object.freeze([...(claims.scopes ?? [])]),
    resources: Object.freeze([...(claims.resources ?? [])]),
    permissions: Object.freeze([...(claims.permissions ?? [])]),
    expiresAt: 4_102_444_800,
    claims: Object.freeze({}),
  });
}

/** The user of the brief's worked example (its JWT in "Step 3"). */
export const BRIEF_USER: Principal = principal({
  roles: ['admin', 'developer'],
  groups: ['engineering'],
  scopes: ['read', 'write'],
  resources: ['projects', 'analytics'],
});
