/** An engine and principals for ServiceAccess tests (no token round trip needed). */
import { generateKeyPairSync } from 'node:crypto';
import { type AuditEvent, MemoryAuditSink } from '../../../src/audit.js';
import { type AuthSec, createAuthSec } from '../../../src/engine.js';
import { silentLogger } from '../../../src/logger.js';
import type { IssuerOptions } from '../../../src/options.js';
import type { Logger, Principal } from '../../../src/types.js';
import { principal as policyPrincipal, type TestClaims } from '../../policy/principal.js';

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

/** A frozen principal as `authenticate()` hands it over. */
export function principal(tenantId: string, subject: string, claims: TestClaims = {}): Principal {
  return Object.freeze({
    ...policyPrincipal(claims),
    subject,
    email: `${subject}@example.test`,
    tenantId,
    claims: Object.freeze({ sub: subject }),
  });
}
