/**
 * What the tenant's audit log holds, read back through the storage API: the `tool.call` rows by decision and
 * by arguments digest, and whether the chain verifies.
 */
import { parseMasterKey, silentLogger } from '@authsec/core';
import { openStorage, verifyAuditChain } from '@authsec/core/postgres';
import { TENANT } from './world.js';

/** One `tool.call` row: the decision, and whose it was. */
export interface AuditRow {
  readonly decision: string;
  readonly reason: string | null;
  readonly subject: string | null;
  readonly issuer: string | null;
}

/** The `tool.call` rows of {@link TENANT}. */
export interface AuditRows {
  readonly allow: number;
  readonly deny: number;
  /** Rows by `arguments_digest` (with `withDigests`). */
  readonly byDigest: ReadonlyMap<string, readonly AuditRow[]>;
  /** Whether the HMAC chain verified (no row modified, missing or cut). */
  readonly chainOk: boolean;
  readonly chainRows: number;
}

/**
 * Reads the tenant's audit rows on `databaseUrl` (`withDigests`: every row by its digest too), opening the
 * storage with the fleet's `issuers`.
 */
export async function readAuditRows(
  databaseUrl: string,
  masterKey: string,
  issuers: readonly string[],
  withDigests = false,
): Promise<AuditRows> {
  const ring = parseMasterKey(masterKey);
  const storage = await openStorage({
    databaseUrl,
    masterKey: ring,
    issuers,
    migrate: false,
    logger: silentLogger,
  });
  try {
    const handle = await storage.tenancy.handle(TENANT);
    const counts = await handle.sql.query<{ decision: string; n: string }>(
      `SELECT decision, count(*)::text AS n FROM ${handle.schema}.audit_events WHERE action = 'tool.call' GROUP BY decision`,
    );
    const count = (decision: string) => Number(counts.rows.find((r) => r.decision === decision)?.n ?? 0);
    const byDigest = new Map<string, AuditRow[]>();
    if (withDigests) {
      const rows = await handle.sql.query<AuditRow & { digest: string | null }>(
        `SELECT arguments_digest AS digest, decision, reason, subject, issuer FROM ${handle.schema}.audit_events WHERE action = 'tool.call'`,
      );
      for (const { digest, ...row } of rows.rows) {
        if (digest === null) continue;
        const list = byDigest.get(digest);
        if (list) list.push(row);
        else byDigest.set(digest, [row]);
      }
    }
    const chain = await verifyAuditChain(handle, ring);
    return {
      allow: count('allow'),
      deny: count('deny'),
      byDigest,
      chainOk: chain.ok,
      chainRows: chain.rows,
    };
  } finally {
    await storage.close();
  }
}
