/**
 * The tenancy's change feed table: every published change is a row, and where the master database cannot
 * deliver notifications across processes (the embedded database) every process polls it. Run on in-process
 * PGlite and on PostgreSQL, with the master client told that notifications do not cross connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, formatChange, type Tenancy, type TenantChange } from '../../src/postgres/tenancy.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it is true; returns the time it took, or fails after `deadlineMs`. */
async function within(deadlineMs: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > deadlineMs) throw new Error(`condition not met within ${deadlineMs} ms`);
    await sleep(10);
  }
}

/** The same database, as a client that cannot deliver notifications to other connections. */
function polled(inner: SqlClient): SqlClient {
  return { ...inner, notifiesAcrossConnections: false, listen: () => Promise.reject(new Error('not used')) };
}

/** A polled client whose database can be switched off. */
function switchable(inner: SqlClient): { client: SqlClient; down: boolean } {
  const state = { down: false } as { client: SqlClient; down: boolean };
  const refuse = () => Promise.reject(new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable'));
  state.client = {
    ...polled(inner),
    query: (text, params) => (state.down ? refuse() : inner.query(text, params)),
    transaction: (fn) => (state.down ? refuse() : inner.transaction(fn)),
  };
  return state;
}

const change = (subject: string): TenantChange => ({ tenantId: 'feed-co', subject, kind: 'binding' });

describe.each(TEST_DATABASES)('change feed on $name', ({ create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let publisher: Tenancy;
  const opened: Tenancy[] = [];

  const open = async (client: SqlClient, options: Partial<Parameters<typeof createTenancy>[0]> = {}) => {
    const t = await createTenancy({
      master: client,
      logger: silentLogger,
      changePollIntervalMs: 50,
      ...options,
    });
    opened.push(t);
    return t;
  };

  const feedRows = async () =>
    (
      await master.query<{ seq: string; payload: string }>(
        'SELECT seq::text AS seq, payload FROM authsec.changes ORDER BY seq',
      )
    ).rows;

  beforeAll(async () => {
    db = await create();
    master = await db.open();
    publisher = await open(polled(master));
    await publisher.migrate();
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(opened.map((t) => t.close()));
    await db?.dispose();
  });

  it('writes every published change to the feed table', async () => {
    await publisher.publish(change('row-1'));
    const rows = await feedRows();
    expect(rows.at(-1)?.payload).toBe(formatChange(change('row-1')));
  });

  it('delivers to a polling replica what is published after it started, and to the publisher once', async () => {
    await publisher.publish(change('before'));
    const replica = await open(polled(await db.open()));
    const heard: string[] = [];
    const heardHere: string[] = [];
    replica.subscribe((c) => heard.push(c.subject ?? ''));
    publisher.subscribe((c) => heardHere.push(c.subject ?? ''));
    const started = Date.now();
    await publisher.publish(change('after'));
    // The publisher hears its own change at once, without waiting for a poll.
    expect(heardHere).toEqual(['after']);
    const ms = await within(1000, () => heard.includes('after'));
    expect(ms).toBeLessThan(1000);
    expect(Date.now() - started).toBeLessThan(1000);
    await sleep(200);
    expect(heard).toEqual(['after']);
    expect(heardHere).toEqual(['after']);
  });

  it('delivers each of many changes once and in order, across one- and two-digit sequence numbers', async () => {
    // Regression: the poll once ordered seq as text (1, 10, 11, ..., 2), delivering changes twice.
    const replica = await open(polled(await db.open()));
    const heard: string[] = [];
    replica.subscribe((c) => heard.push(c.subject ?? ''));
    const subjects = Array.from({ length: 25 }, (_, i) => `many-${i}`);
    for (const subject of subjects) await publisher.publish(change(subject));
    await within(2000, () => heard.length >= subjects.length);
    await sleep(300);
    expect(heard).toEqual(subjects);
  });

  it('carries changes both ways between a replica on notifications and a polling one', async () => {
    const listening = await open(await db.open());
    const polling = await open(polled(await db.open()));
    const byListening: string[] = [];
    const byPolling: string[] = [];
    listening.subscribe((c) => byListening.push(c.subject ?? ''));
    polling.subscribe((c) => byPolling.push(c.subject ?? ''));
    await listening.publish(change('from-listening'));
    await polling.publish(change('from-polling'));
    await within(1000, () => byPolling.includes('from-listening') && byListening.includes('from-polling'));
  });

  it('prunes rows older than the retention on publish, and polling goes on', async () => {
    const pruning = await open(polled(master), { changeRetentionMs: 1 });
    const replica = await open(polled(await db.open()));
    const heard: string[] = [];
    replica.subscribe((c) => heard.push(c.subject ?? ''));
    await pruning.publish(change('old'));
    await sleep(30);
    await pruning.publish(change('new'));
    const rows = await feedRows();
    expect(rows.map((r) => r.payload)).toEqual([formatChange(change('new'))]);
    await within(1000, () => heard.includes('new'));
    await pruning.publish(change('newer'));
    await within(1000, () => heard.includes('newer'));
  });

  it('drops every cache on a malformed feed row', async () => {
    const replica = await open(polled(await db.open()));
    let resets = 0;
    replica.subscribe(
      () => {},
      () => resets++,
    );
    await master.query('INSERT INTO authsec.changes (payload) VALUES ($1)', ['{"t":"Bad Id","k":"tenant"}']);
    await within(1000, () => resets > 0);
  });

  it('drops caches while the feed is unreachable, and still delivers what was published meanwhile', async () => {
    const cut = switchable(await db.open());
    const replica = await open(cut.client);
    const heard: string[] = [];
    let resets = 0;
    replica.subscribe(
      (c) => heard.push(c.subject ?? ''),
      () => resets++,
    );
    cut.down = true;
    await within(1000, () => resets > 0);
    await publisher.publish(change('during-outage'));
    await sleep(150);
    expect(heard).toEqual([]);
    cut.down = false;
    await within(1000, () => heard.includes('during-outage'));
  });

  it('validates its options', async () => {
    await expect(open(master, { changePollIntervalMs: 0 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(open(master, { changeRetentionMs: -1 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
