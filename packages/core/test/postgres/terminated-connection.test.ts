/**
 * A connection the server terminates while a transaction holds it (PostgreSQL stopped with `pg_ctl stop -m
 * fast`, a failover, `pg_terminate_backend`) must fail that transaction with SERVICE_UNAVAILABLE, never crash
 * the process. `pg`'s pool removes its own `'error'` listener from a client it hands out, so a FATAL message
 * that arrives between two statements of a transaction (while the caller awaits something else) is an
 * unhandled `'error'` event: the whole server exits. Found by the fault suite (PostgreSQL stopped under load:
 * the audit sink's batch transactions). Real PostgreSQL only (PGlite has no server to terminate connections).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import { createPgClient, type SqlClient } from '../../src/postgres/sql.js';
import { PG_SKIP_REASON, PG_URL, postgresDatabase, type TestDatabase } from '../helpers/databases.js';

describe('a connection terminated inside a transaction (real PostgreSQL)', () => {
  let db: TestDatabase | undefined;
  let client: SqlClient | undefined;
  let admin: SqlClient | undefined;

  beforeAll(async () => {
    if (!PG_URL) return;
    db = await postgresDatabase('terminated');
    client = await createPgClient({ connectionString: db.url!, max: 2 });
    admin = await createPgClient({ connectionString: db.url!, max: 1 });
  });

  afterAll(async () => {
    await client?.close();
    await admin?.close();
    await db?.dispose();
  });

  it('rejects the transaction with SERVICE_UNAVAILABLE, escapes nothing, and the pool serves again', async (context) => {
    if (!client || !admin) {
      context.skip(PG_SKIP_REASON);
      return;
    }
    const sql = client;
    const other = admin;
    // An 'error' event nobody listens to would be thrown from the socket's data handler: an uncaught exception.
    const escaped: unknown[] = [];
    const onEscape = (error: unknown) => escaped.push(error);
    process.on('uncaughtException', onEscape);
    try {
      const outcome = sql
        .transaction(async (tx) => {
          const pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          // Between two statements, as the audit sink computes a batch's MACs: the server ends the session.
          await other.query('SELECT pg_terminate_backend($1)', [pid]);
          await new Promise((resolve) => setTimeout(resolve, 300));
          await tx.query('SELECT 1');
        })
        .then(
          () => 'committed',
          (error: unknown) => (isAuthSecError(error) ? error.code : String(error)),
        );
      expect(await outcome).toBe('SERVICE_UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(escaped.map(String)).toEqual([]);
      // The terminated connection was discarded, not returned to the pool.
      for (let i = 0; i < 4; i++)
        expect((await sql.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onEscape);
    }
  });
});
