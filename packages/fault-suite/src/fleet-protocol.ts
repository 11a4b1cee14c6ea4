/**
 * What the fleet (`fleet.ts`, a child process) and its parent (`fleet-client.ts`) say to each other, and the
 * mounts it serves. No side effects: importing `fleet.ts` runs the fleet.
 */
import type { PostgresAuditSinkState } from '@authsec/core/postgres';

/** The mounts, in the order they are reported. */
export const MOUNTS = ['express', 'fastify', 'nest-express', 'nest-fastify'] as const;
export type MountName = (typeof MOUNTS)[number];

/** What the parent tells the fleet (JSON in `AUTHSEC_FLEET`). */
export interface FleetConfig {
  /** The master database (PostgreSQL URL), seeded by the parent. */
  readonly databaseUrl: string;
  /** The trusted issuers (dev IdPs); their keys are fetched from their JWKS. The first is named in metadata. */
  readonly issuers: readonly string[];
  /** `AUTHSEC_MASTER_KEY` form. */
  readonly masterKey: string;
  /** The audit sink's `refuseAfterMs`. Default: the sink's (5000). */
  readonly refuseAfterMs?: number;
}

/** The fleet's counters, for the parent's checks. */
export interface FleetStats {
  readonly rss: number;
  readonly heapUsed: number;
  readonly audit: PostgresAuditSinkState;
}

/** Messages from the fleet. */
export type FleetMessage =
  | { readonly type: 'ready'; readonly urls: Readonly<Record<MountName, string>> }
  | { readonly type: 'stats'; readonly stats: FleetStats }
  | { readonly type: 'closed'; readonly stats: FleetStats };

/** Messages to the fleet. */
export type FleetCommand = { readonly type: 'stats' | 'flush' | 'close' };
