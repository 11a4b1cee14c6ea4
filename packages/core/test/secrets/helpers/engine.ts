/** An engine and principals for ServiceAccess tests (no token round trip needed). */
import { generateKeyPairSync } from 'node:crypto';
import { type AuditEvent, MemoryAuditSink } from '../../../src/audit.js';
import { type AuthSec, createAuthSec } from '../../../src/engine.js';
import { silentLogger } from '../../../src/logger.js';
import type { IssuerOptions } from '../../../src/options.js';
import type { Logger, Principal } from '../../../src/types.js';

type Jwk = NonNullable<IssuerOptions['keys']>[number];

/** An engine whose audit events land in memory. */
export function testEngine(logger: Logger = silentLogger): { authsec: AuthSec; events: AuditEvent[] } {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as object), kid: 'k1', alg: 'ES256' } as Jwk;
  const sink = new MemoryAuditSink();
  const authsec = createAuthSec({
    issuers: [{ issuer: 'https://idp.test', keys: [jwk] }],
    audience: 'urn:authsec:secrets-test',
    logger,
    audit: { sinks: [sink] },
  });
  return { authsec, events: sink.events };
}

/** Claims of a test principal. */
export interface TestClaims {
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly resources?: readonly string[];
  readonly permissions?: readonly string[];
}

/** A frozen principal as `authenticate()` hands it over. */
export function principal(tenantId: string, subject: string, claims: TestClaims = {}): Principal {
  return Object.freeze({
    subject,
    email: `${subject}@example.test`,
    tenantId,
    clientId: undefined,
    issuer: 'https://idp.test',
    roles: Object.freeze([...(claims.roles ?? [])]),
    groups: Object.freeze([...(claims.groups ?? [])]),
    scopes: Object.freeze([...(claims.scopes ?? [])]),
    resources: Object.freeze([...(claims.resources ?? [])]),
    permissions: Object.freeze([...(claims.permissions ?? [])]),
    expiresAt: 4_102_444_800,
    claims: Object.freeze({ sub: subject }),
  });
}
