#!/usr/bin/env node
/**
 * The bounded soak: `SOAK_CALLS` (default 100,000) `tools/call` from `SOAK_CALLERS` (default 200) concurrent
 * callers, each with its own dev IdP token and MCP session, split evenly over the four HTTP mounts (Express,
 * Fastify, NestJS on Express and on Fastify) of one fleet process, on the PostgreSQL storage (claims
 * validated in the directory, every decision in the PostgreSQL audit sink). The callers' grants make some
 * calls allowed and some denied, and the expected decision of every call is known.
 *
 * It prints the calls, wrong decisions, decisions against audit rows, dropped events, the fleet's RSS after
 * the warm-up and at the end, and the duration; it exits 1 when any of these is out of bounds (not every call
 * decided, an error, a wrong decision, rows unequal to decisions, a dropped event, the fleet crashed, RSS at
 * the end more than 20% above the warm-up's). A call refused with 503 `SERVICE_UNAVAILABLE` and `Retry-After`
 * (the audit log's backpressure, when the server outruns it) is counted and made again after 50 ms, as a
 * client would; any other answer is an error. RSS is sampled (after a collection) every tenth of the calls: one
 * sample moves by tens of MB with the allocator while the heap stays flat, so "after warm-up" is the median of
 * the samples at 10, 20 and 30% of the calls and "at the end" the median of those at 80, 90 and 100%; a leak
 * grows both medians apart. With `AUTHSEC_TEST_COUNTS_FILE` set it
 * appends `passed failed skipped` (one per check) to it, so that `.ci/run` counts it in its total.
 *
 * The database: a fresh database on `PG_URL` (dropped at the end), else a PostgreSQL server of its own from
 * `AUTHSEC_TEST_PGBIN`.
 */
import { appendFileSync } from 'node:fs';
import { readAuditRows } from './audit-rows.js';
import { runDatabase } from './database.js';
import { type Fleet, startFleet } from './fleet-client.js';
import { type FleetStats, MOUNTS } from './fleet-protocol.js';
import { drive, type Outcome, type OutcomeKind, openSessions } from './load.js';
import { type Caller, issueTokens, seedDirectory, startWorld } from './world.js';

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

const CALLS = positive('SOAK_CALLS', 100_000);
const CALLERS = positive('SOAK_CALLERS', 200);
/** Calls between two RSS samples: a tenth of the run. */
const TENTH = Math.ceil(CALLS / 10);
/** RSS at the end may exceed the warm-up's by this much. */
const RSS_GROWTH = 0.2;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function main(): Promise<number> {
  const started = Date.now();
  const db = await runDatabase('authsec_soak');
  const world = await startWorld(CALLERS);
  let fleet: Fleet | undefined;
  try {
    await seedDirectory(world, db.url);
    const running = await startFleet({
      databaseUrl: db.url,
      issuers: [world.idp.issuer],
      masterKey: world.masterKey,
    });
    fleet = running;
    const urlOf = (caller: Caller) => running.urls[MOUNTS[caller.index % MOUNTS.length]!];
    await issueTokens(world, urlOf);
    const sessions = await openSessions(world.callers, urlOf);
    process.stdout.write(
      `soak: ${CALLS} tools/call, ${CALLERS} callers (${CALLERS / MOUNTS.length} per mount: ${MOUNTS.join(', ')}), PostgreSQL audit sink\n`,
    );

    const counts: Record<OutcomeKind, number> = {
      allowed: 0,
      denied: 0,
      refused: 0,
      'refused-in-call': 0,
      error: 0,
    };
    let wrong = 0;
    let issued = 0;
    let done = 0;
    const errorSamples: string[] = [];
    /** The fleet's counters every tenth of the run. */
    const samples: Promise<FleetStats>[] = [];
    const loadStarted = Date.now();
    await drive(world.callers, sessions, {
      urlOf,
      // A ticket per call to decide; a refused call gives its ticket back and is made again after the back-off
      // (a 503 with Retry-After is backpressure from the audit log, which a client retries).
      // Counted only when a ticket is taken: a caller that stops must not use one up, or a ticket given back by a
      // late refusal would never be issued again (the run then decides fewer than CALLS).
      more: () => {
        if (issued >= CALLS) return false;
        issued++;
        return true;
      },
      record(outcome: Outcome) {
        counts[outcome.kind]++;
        if (outcome.kind === 'refused' || outcome.kind === 'refused-in-call') {
          issued--;
          return;
        }
        if ((outcome.kind === 'allowed' || outcome.kind === 'denied') && !outcome.right) wrong++;
        if (outcome.kind === 'error' && errorSamples.length < 5) errorSamples.push(outcome.detail ?? '');
        if (++done % TENTH === 0 && done < CALLS) samples.push(running.stats());
      },
    });
    const loadMs = Date.now() - loadStarted;
    const course = await Promise.all(samples);
    let stats = await running.flush();
    for (let i = 0; i < 100 && stats.audit.buffered > 0; i++) stats = await running.flush();
    const endStats = await running.stats();
    const rss = [...course, endStats].map((sample) => sample.rss);
    const rssWarm = median(rss.slice(0, 3));
    const rssEnd = median(rss.slice(-3));
    const alive = running.exitCode() === undefined;
    const rows = await readAuditRows(db.url, world.masterKey, [world.idp.issuer]);
    const closed = await running.close();
    fleet = undefined;

    const calls = done;
    const decisions = counts.allowed + counts.denied;
    const refusals = counts.refused + counts['refused-in-call'];
    const checks: [string, boolean][] = [
      [
        `calls ${calls} of ${CALLS} decided; errors ${counts.error}; refused and retried ${refusals} (503 backpressure)`,
        calls === CALLS && decisions === calls && counts.error === 0,
      ],
      [`wrong decisions ${wrong}`, wrong === 0],
      [
        `decisions ${decisions} (allowed ${counts.allowed}, denied ${counts.denied}) vs audit rows ${rows.allow + rows.deny} (allow ${rows.allow}, deny ${rows.deny}); chain ${rows.chainOk ? 'verifies' : 'BROKEN'}`,
        rows.allow === counts.allowed && rows.deny === counts.denied && rows.chainOk,
      ],
      [
        `dropped events ${closed.stats.audit.dropped}, still buffered ${stats.audit.buffered}`,
        closed.stats.audit.dropped === 0 && stats.audit.buffered === 0,
      ],
      [
        `RSS after warm-up ${mb(rssWarm)}, at the end ${mb(rssEnd)} (${rssWarm ? (((rssEnd - rssWarm) / rssWarm) * 100).toFixed(1) : '?'}%, at most +${RSS_GROWTH * 100}%; V8 heap used ${mb(course[0]?.heapUsed ?? 0)} then ${mb(endStats.heapUsed)})`,
        rssWarm > 0 && rssEnd <= rssWarm * (1 + RSS_GROWTH),
      ],
      [`fleet alive until closed, exit code ${String(closed.code)}`, alive && closed.code === 0],
    ];
    for (const [text, ok] of checks) process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${text}\n`);
    process.stdout.write(`     RSS every ${TENTH} calls: ${rss.map(mb).join(', ')}\n`);
    for (const sample of errorSamples) process.stdout.write(`     error: ${sample}\n`);
    const rate = Math.round((calls / loadMs) * 1000);
    process.stdout.write(
      `duration ${((Date.now() - started) / 1000).toFixed(1)} s (load ${(loadMs / 1000).toFixed(1)} s, ${rate} calls/s)\n`,
    );
    const failed = checks.filter(([, ok]) => !ok).length;
    // The fleet logs errors only: what went wrong, when something did.
    if (failed > 0 && running.stderr().trim() !== '') {
      process.stdout.write(
        `fleet log (last lines):\n${running.stderr().trim().split('\n').slice(-20).join('\n')}\n`,
      );
    }
    report(checks.length - failed, failed);
    return failed === 0 ? 0 : 1;
  } finally {
    fleet?.kill();
    await world.close();
    await db.dispose();
  }
}

/** Appends `passed failed skipped` to the CI counts file, when there is one. */
function report(passed: number, failed: number): void {
  const file = process.env.AUTHSEC_TEST_COUNTS_FILE;
  if (file) appendFileSync(file, `${passed} ${failed} 0\n`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${String((error as Error)?.stack ?? error)}\n`);
    report(0, 1);
    process.exit(1);
  },
);
