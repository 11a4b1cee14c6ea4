/**
 * The wire-protocol server in front of PGlite: several `pg` connections take turns on one PGlite session
 * without ever mixing one connection's statement with another's, and transactions keep the backend to
 * themselves until they end.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { startWireServer, type WireServer } from '../../src/postgres/embedded-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('embedded wire server', () => {
  let dir: string;
  let db: PGlite;
  let server: WireServer;
  const pools: pg.Pool[] = [];

  const pool = (max = 5) => {
    const p = new pg.Pool({ host: dir, port: 5432, user: 'postgres', database: 'postgres', max });
    p.on('error', () => {});
    pools.push(p);
    return p;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'authsec-wire-'));
    db = await PGlite.create();
    server = await startWireServer(db, {
      socketPath: join(dir, '.s.PGSQL.5432'),
      logger: silentLogger,
      idleHolderTimeoutMs: 400,
    });
    await pool().query('CREATE TABLE t (id int PRIMARY KEY, v text)');
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(pools.map((p) => p.end()));
    await server?.close();
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('listens on a socket only its user can use', () => {
    expect(statSync(join(dir, '.s.PGSQL.5432')).mode & 0o777).toBe(0o600);
  });

  it('never mixes concurrent statements, even when a large one arrives in many chunks', async () => {
    // The failure this server exists to prevent: another connection's Parse between this one's Parse and
    // Bind ran the wrong statement with the wrong parameters.
    const big = 'x'.repeat(300_000);
    const clients = [pool(), pool(), pool()];
    const jobs: Promise<boolean>[] = [];
    for (let i = 0; i < 450; i++) {
      const p = clients[i % 3] as pg.Pool;
      if (i % 3 === 0) {
        jobs.push(p.query('SELECT $1::int AS v', [i]).then((r) => r.rows[0]?.v === i));
      } else if (i % 3 === 1) {
        jobs.push(
          p
            .query('SELECT length($1::text) AS n, $2::int AS k', [big + i, i])
            .then((r) => r.rows[0]?.n === big.length + String(i).length && r.rows[0]?.k === i),
        );
      } else {
        jobs.push(
          p
            .query('INSERT INTO t (id, v) VALUES ($1, $2) RETURNING id', [i, `v${i}`])
            .then((r) => r.rows[0]?.id === i),
        );
      }
    }
    const results = await Promise.all(jobs);
    expect(results.filter((ok) => !ok)).toHaveLength(0);
    expect((await clients[0]?.query('SELECT count(*)::int AS n FROM t'))?.rows[0].n).toBe(150);
  });

  it('keeps the backend for an open transaction: others wait and then see only what was committed', async () => {
    const a = await pool(1).connect();
    const other = pool(1);
    await a.query('BEGIN');
    await a.query("INSERT INTO t (id, v) VALUES (10001, 'in-tx')");
    let seen: number | undefined;
    const waiting = other
      .query('SELECT count(*)::int AS n FROM t WHERE id = 10001')
      .then((r) => (seen = r.rows[0].n));
    await sleep(100);
    expect(seen).toBeUndefined();
    await a.query('COMMIT');
    await waiting;
    expect(seen).toBe(1);

    await a.query('BEGIN');
    await a.query("INSERT INTO t (id, v) VALUES (10002, 'rolled back')");
    await a.query('ROLLBACK');
    expect((await other.query('SELECT count(*)::int AS n FROM t WHERE id = 10002')).rows[0].n).toBe(0);
    a.release();
  });

  it('rolls back the transaction of a connection that goes away, and serves the others on', async () => {
    const c = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    await c.query('BEGIN');
    await c.query("INSERT INTO t (id, v) VALUES (10003, 'cut')");
    const other = pool(1);
    const waiting = other.query('SELECT count(*)::int AS n FROM t WHERE id = 10003');
    await sleep(50);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    expect((await waiting).rows[0].n).toBe(0);
    expect((await other.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('closes a connection that sits in a transaction while others wait', async () => {
    const c = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    await c.query('BEGIN');
    await c.query("INSERT INTO t (id, v) VALUES (10004, 'idle')");
    const started = Date.now();
    const r = await pool(1).query('SELECT count(*)::int AS n FROM t WHERE id = 10004');
    expect(r.rows[0].n).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await expect(c.query('COMMIT')).rejects.toThrow();
    await c.end().catch(() => {});
  });

  it('closes the connection and reports it when the backend itself fails', async () => {
    const d = mkdtempSync(join(tmpdir(), 'authsec-wire-'));
    const failures: unknown[] = [];
    const broken = await startWireServer(
      {
        execProtocolRawStream: () => Promise.reject(new Error('RuntimeError: unreachable')),
        isInTransaction: () => false,
      },
      { socketPath: join(d, '.s.PGSQL.5432'), logger: silentLogger, onBackendError: (e) => failures.push(e) },
    );
    const c = new pg.Client({ host: d, port: 5432, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await expect(c.connect()).rejects.toThrow();
    expect(failures).toHaveLength(1);
    await broken.close();
    rmSync(d, { recursive: true, force: true });
  });

  it('removes its socket when closed', async () => {
    const d = mkdtempSync(join(tmpdir(), 'authsec-wire-'));
    const s = await startWireServer(db, { socketPath: join(d, '.s.PGSQL.5432'), logger: silentLogger });
    expect(existsSync(join(d, '.s.PGSQL.5432'))).toBe(true);
    expect(s.connections()).toBe(0);
    await s.close();
    await s.close();
    expect(existsSync(join(d, '.s.PGSQL.5432'))).toBe(false);
    rmSync(d, { recursive: true, force: true });
  });
});
