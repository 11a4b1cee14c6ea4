/**
 * PostgreSQL stopped and restarted under load, across the four HTTP mounts (Express, Fastify, NestJS on Express
 * and on Fastify), on a PostgreSQL server of this test's own (`pg_ctl stop -m fast`, and `-m immediate` as a
 * crash, then `start`; never the shared `PG_URL` server). Callers are dev IdP users whose roles come from the directory; every decision goes to
 * the PostgreSQL audit sink. The test asserts:
 *
 * - while the database is down (once the documented window has passed: warm entries until the next database
 *   contact, and the audit sink's `refuseAfterMs`), every call is refused with HTTP 503, body code
 *   `SERVICE_UNAVAILABLE` and `Retry-After`; never another status, never a connection error;
 * - no crash: the fleet process is still running, has logged no unhandled error, and closes with exit code 0;
 * - each mount serves an allowed call again within 5 s of the database's return;
 * - no audit event lost: every decision a client saw (allowed or denied) has its row, with that decision, found
 *   by the digest of the call's unique arguments; no refused call has one; nothing was dropped; the chain
 *   verifies; and no decision was wrong.
 */
import { digestArguments } from '@authsec/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRows } from '../src/audit-rows.js';
import { type Fleet, startFleet } from '../src/fleet-client.js';
import { MOUNTS, type MountName } from '../src/fleet-protocol.js';
import { drive, type Outcome, openSessions } from '../src/load.js';
import { type OwnPostgres, startOwnPostgres, testPgBin } from '../src/own-postgres.js';
import { type Caller, issueTokens, seedDirectory, startWorld, type World } from '../src/world.js';

const PGBIN = testPgBin();
const SKIP_REASON =
  'AUTHSEC_TEST_PGBIN is not set: the PostgreSQL restart test needs server binaries to run a PostgreSQL of its own (.ci/run sets it)';
if (!PGBIN) process.stderr.write(`skip: ${SKIP_REASON}\n`);

/** Callers: ten per mount. */
const CALLERS = 40;
/** The audit sink's default: writes failing this long make the engine refuse decisions. */
const REFUSE_AFTER_MS = 5000;
/** How long the database stays down: past every window after which all calls must be refused. */
const DOWN_MS = 9000;
/** After the stop, the window in which decisions may still be taken (cache until the next contact, the sink). */
const REFUSAL_WINDOW_MS = REFUSE_AFTER_MS + 1500;
/** The service must be back this soon after the database. */
const RECOVERY_MS = 5000;

const mountOf = (caller: Caller): MountName => MOUNTS[caller.index % MOUNTS.length]!;

describe.each([
  { mode: 'fast' as const, how: 'stopped (pg_ctl stop -m fast)' },
  { mode: 'immediate' as const, how: 'killed (pg_ctl stop -m immediate, as a crash)' },
])('PostgreSQL $how and restarted under load, across the HTTP mounts', ({ mode }) => {
  let pg: OwnPostgres | undefined;
  let world: World | undefined;
  let fleet: Fleet | undefined;

  beforeAll(async () => {
    if (!PGBIN) return;
    pg = await startOwnPostgres(PGBIN);
    world = await startWorld(CALLERS);
    await seedDirectory(world, pg.url);
    fleet = await startFleet({
      databaseUrl: pg.url,
      issuers: [world.idp.issuer],
      masterKey: world.masterKey,
      refuseAfterMs: REFUSE_AFTER_MS,
    });
    const urls = fleet.urls;
    await issueTokens(world, (caller) => urls[mountOf(caller)]);
  }, 120_000);

  afterAll(async () => {
    fleet?.kill();
    await world?.close();
    await pg?.dispose();
  });

  it('refuses with 503 while it is down, does not crash, serves again within 5 s, loses no audit event', async (context) => {
    if (!PGBIN || !pg || !world || !fleet) {
      context.skip(SKIP_REASON);
      return;
    }
    const running = fleet;
    const urlOf = (caller: Caller) => running.urls[mountOf(caller)];
    const callers = world.callers;
    const sessions = await openSessions(callers, urlOf);
    const outcomes: Outcome[] = [];
    let stopLoad = false;
    const load = drive(callers, sessions, {
      urlOf,
      more: () => !stopLoad,
      record: (o) => outcomes.push(o),
    });
    const mountOfOutcome = (o: Outcome) => mountOf(callers[o.caller]!);
    const waitFor = async (check: () => boolean, ms: number) => {
      const deadline = Date.now() + ms;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      return check();
    };

    try {
      // Warm: every mount has served allowed calls.
      const servedBefore = await waitFor(
        () => MOUNTS.every((m) => outcomes.some((o) => o.kind === 'allowed' && mountOfOutcome(o) === m)),
        15_000,
      );
      expect(servedBefore).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));

      const stopAt = Date.now();
      await pg.stop(mode);
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, DOWN_MS));
      const startAt = Date.now();
      await pg.start();
      const upAt = Date.now();
      // Back: every mount serves an allowed call again, within RECOVERY_MS of the database's return.
      const recoveredBy = new Map<MountName, number>();
      await waitFor(() => {
        for (const o of outcomes) {
          if (o.kind === 'allowed' && o.at >= upAt && !recoveredBy.has(mountOfOutcome(o)))
            recoveredBy.set(mountOfOutcome(o), o.at - upAt);
        }
        return recoveredBy.size === MOUNTS.length;
      }, RECOVERY_MS + 5000);
      // Keep calling a little after recovery, then stop.
      await new Promise((r) => setTimeout(r, 1500));
      stopLoad = true;
      await load;

      // 0 crashes: the fleet is still up and logged nothing unhandled.
      expect(running.exitCode(), running.stderr().slice(-4000)).toBeUndefined();
      expect(running.stderr()).not.toMatch(/unhandled|uncaught/i);

      // No answer other than allowed, denied or refused; never a wrong decision.
      const errors = outcomes.filter((o) => o.kind === 'error');
      expect(errors.slice(0, 5).map((o) => o.detail)).toEqual([]);
      expect(outcomes.filter((o) => (o.kind === 'allowed' || o.kind === 'denied') && !o.right)).toEqual([]);

      // While down, past the window: all refused with 503 SERVICE_UNAVAILABLE (checked in callTool), on every mount.
      const whileDown = outcomes.filter((o) => o.at >= stopAt + REFUSAL_WINDOW_MS && o.at < startAt);
      expect(whileDown.length).toBeGreaterThan(0);
      expect(
        whileDown.filter((o) => o.kind !== 'refused').map((o) => `${o.kind} at +${o.at - stopAt} ms`),
      ).toEqual([]);
      for (const m of MOUNTS) expect(whileDown.some((o) => mountOfOutcome(o) === m)).toBe(true);

      // Served again within 5 s of the database's return, on every mount.
      expect(Object.fromEntries(recoveredBy)).toEqual(
        Object.fromEntries(MOUNTS.map((m) => [m, expect.any(Number)])),
      );
      for (const ms of recoveredBy.values()) expect(ms).toBeLessThanOrEqual(RECOVERY_MS);

      // No audit event lost: the buffered events are written; every decision seen has its row.
      let stats = await running.flush();
      for (let i = 0; i < 50 && stats.audit.buffered > 0; i++) {
        await new Promise((r) => setTimeout(r, 200));
        stats = await running.flush();
      }
      expect(stats.audit.buffered).toBe(0);
      expect(stats.audit.dropped).toBe(0);
      const rows = await readAuditRows(pg.url, world.masterKey, [world.idp.issuer], true);
      expect(rows.chainOk).toBe(true);
      const decided = outcomes.filter((o) => o.kind === 'allowed' || o.kind === 'denied');
      const missing = decided.filter((o) => {
        const recorded = rows.byDigest.get(digestArguments(o.args));
        return !recorded?.some((r) => r.decision === (o.kind === 'allowed' ? 'allow' : 'deny'));
      });
      expect(missing.map((o) => `${o.args.call} ${o.kind} at +${o.at - stopAt} ms`)).toEqual([]);
      const refused = outcomes.filter((o) => o.kind === 'refused' || o.kind === 'refused-in-call');
      expect(
        refused.filter((o) => rows.byDigest.has(digestArguments(o.args))).map((o) => o.args.call),
      ).toEqual([]);
      expect(rows.allow + rows.deny).toBeGreaterThanOrEqual(decided.length);

      const lastDecision = Math.max(
        ...decided.filter((o) => o.at >= stopAt && o.at < startAt).map((o) => o.at - stopAt),
        0,
      );
      const firstRefusal = Math.min(...refused.map((o) => o.at - stopAt));
      process.stdout.write(
        `postgres restart (${mode}): ${outcomes.length} calls (${decided.length} decided, ${refused.length} refused); ` +
          `stop took ${downAt - stopAt} ms, first refusal +${firstRefusal} ms, last decision while down +${lastDecision} ms; ` +
          `start took ${upAt - startAt} ms; served again after ${[...recoveredBy].map(([m, ms]) => `${m} ${ms} ms`).join(', ')}; ` +
          `audit rows ${rows.allow + rows.deny} for ${decided.length} decisions, refused counted by the sink ${stats.audit.refused}\n`,
      );

      const closed = await running.close();
      expect(closed.code).toBe(0);
      expect(closed.stats.audit.dropped).toBe(0);
    } finally {
      stopLoad = true;
      await load.catch(() => {});
    }
  });
});
