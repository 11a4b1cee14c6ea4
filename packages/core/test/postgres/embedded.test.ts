/**
 * The embedded database shared by every process on one data folder: host election by lock files, takeover
 * of stale locks, failover when the host dies, and (with real processes running the built package) the
 * server's storage working in several processes at once.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import {
  type EmbeddedSqlClient,
  openEmbeddedDatabase,
  readEmbeddedHost,
} from '../../src/postgres/embedded.js';
import { createTenancy } from '../../src/postgres/tenancy.js';

const here = dirname(fileURLToPath(import.meta.url));
const WORKER = join(here, '../fixtures/embedded-worker.mjs');
const DIST = join(here, '../../dist/postgres/embedded.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `'OK'`, or the code of the AuthSecError `promise` rejects with. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

/** Polls `check` until it is true; returns the time it took, or fails after `deadlineMs`. */
async function within(deadlineMs: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > deadlineMs) throw new Error(`condition not met within ${deadlineMs} ms`);
    await sleep(50);
  }
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  if (!r.pid) throw new Error('could not start a process');
  return r.pid;
}

/** Linux start time of a process, as the lock file records it. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function writeLock(dataDir: string, generation: number, fields: Record<string, unknown>): void {
  const record = {
    v: 1,
    generation,
    pid: deadPid(),
    pidStart: null,
    token: randomUUID(),
    socketDir: dataDir,
    state: 'ready',
    since: Date.now(),
    ...fields,
  };
  writeFileSync(join(dataDir, `host.${generation}.lock`), JSON.stringify(record), { mode: 0o600 });
}

const lockFiles = (dataDir: string) => readdirSync(dataDir).filter((n) => /^host\.\d+\.lock$/.test(n));

describe('embedded database in one process', () => {
  let dataDir: string;
  const opened: EmbeddedSqlClient[] = [];
  const open = async (options: { electionTimeoutMs?: number; dataDir?: string } = {}) => {
    const c = await openEmbeddedDatabase({ dataDir, logger: silentLogger, checkIntervalMs: 200, ...options });
    opened.push(c);
    return c;
  };
  const closeAll = async () => {
    await Promise.allSettled(opened.splice(0).map((c) => c.close()));
  };

  beforeAll(() => {
    dataDir = join(mkdtempSync(join(tmpdir(), 'authsec-emb-')), 'pglite');
  });

  afterAll(async () => {
    await closeAll();
    rmSync(dirname(dataDir), { recursive: true, force: true });
  });

  it('elects one host among opens at once; the others connect to its socket', async () => {
    const clients = await Promise.all([open(), open(), open()]);
    expect(clients.map((c) => c.role).sort()).toEqual(['client', 'client', 'host']);
    for (const c of clients) {
      expect(c.kind).toBe('embedded');
      expect(c.notifiesAcrossConnections).toBe(false);
    }
    await clients[0]?.query('CREATE TABLE kept (n int)');
    await clients[1]?.transaction(async (tx) => {
      await tx.query('INSERT INTO kept VALUES (1), (2)');
    });
    expect((await clients[2]?.query<{ n: number }>('SELECT count(*)::int AS n FROM kept'))?.rows[0]?.n).toBe(
      2,
    );

    const host = await readEmbeddedHost(dataDir);
    expect(host).toMatchObject({ generation: 1, pid: process.pid, state: 'ready' });
    expect(host?.socketPath).toBe(join(dataDir, '.s.PGSQL.5432'));
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'host.1.lock')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, '.s.PGSQL.5432')).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('delivers notify to the listeners of this client only', async () => {
    const [a, b] = opened as [EmbeddedSqlClient, EmbeddedSqlClient];
    const heard: string[] = [];
    const stop = await a.listen('local_channel', (p) => heard.push(p));
    await b.notify('local_channel', 'from-b');
    await a.notify('local_channel', 'from-a');
    await sleep(20);
    expect(heard).toEqual(['from-a']);
    await stop();
    await a.notify('local_channel', 'after-stop');
    await sleep(20);
    expect(heard).toEqual(['from-a']);
  });

  it('refuses database placement (one PGlite, one database)', async () => {
    const tenancy = await createTenancy({ master: opened[0] as EmbeddedSqlClient, logger: silentLogger });
    await tenancy.migrate();
    await expect(tenancy.create('elsewhere', { placement: 'database' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    await tenancy.close();
  });

  it('hands over to a remaining process when the host closes, keeping the data', async () => {
    const host = opened.find((c) => c.role === 'host') as EmbeddedSqlClient;
    const others = opened.filter((c) => c !== host);
    await host.close();
    for (const c of others) {
      const first = await outcome(c.query('SELECT 1'));
      expect(['OK', 'SERVICE_UNAVAILABLE']).toContain(first);
    }
    const ms = await within(5000, async () => {
      const results = await Promise.all(others.map((c) => outcome(c.query('SELECT count(*) FROM kept'))));
      return results.every((r) => r === 'OK');
    });
    expect(ms).toBeLessThan(5000);
    expect(others.map((c) => c.role).sort()).toEqual(['client', 'host']);
    expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 2, state: 'ready' });
    expect(lockFiles(dataDir)).toEqual(['host.2.lock']);
    expect(host.role).toBe('none');
    expect(await outcome(host.query('SELECT 1'))).toBe('SERVICE_UNAVAILABLE');
    await closeAll();
    expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 2, state: 'closed' });
  }, 60_000);

  it('takes over a stale lock left by a dead process, and a stale socket file', async () => {
    writeLock(dataDir, 5, { pid: deadPid() });
    writeFileSync(join(dataDir, '.s.PGSQL.5432'), 'left over');
    const c = await open();
    expect(c.role).toBe('host');
    expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 6, pid: process.pid });
    expect(lockFiles(dataDir)).toEqual(['host.6.lock']);
    expect((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM kept')).rows[0]?.n).toBe(2);
    await closeAll();
  }, 60_000);

  it('takes over a lock of this very process that it no longer hosts', async () => {
    writeLock(dataDir, 7, { pid: process.pid });
    const c = await open();
    expect(c.role).toBe('host');
    expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 8 });
    await closeAll();
  }, 60_000);

  it('waits briefly for an unreadable lock (it may be being written), then takes it over', async () => {
    writeFileSync(join(dataDir, 'host.9.lock'), '{"half": ');
    const started = Date.now();
    const c = await open();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(c.role).toBe('host');
    expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 10 });
    await closeAll();
  }, 60_000);

  describe('with another live process holding a lock', () => {
    let child: ChildProcessWithoutNullStreams;
    beforeAll(() => {
      child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    });
    afterAll(() => {
      child.kill('SIGKILL');
    });

    it('waits for a host that is still starting, and fails with SERVICE_UNAVAILABLE when it never serves', async () => {
      writeLock(dataDir, 11, { pid: child.pid, state: 'starting', pidStart: null });
      const started = Date.now();
      await expect(open({ electionTimeoutMs: 1500 })).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    });

    it('takes over from a host that has been starting for too long', async () => {
      writeLock(dataDir, 12, { pid: child.pid, state: 'starting', since: Date.now() - 120_000 });
      const c = await open();
      expect(c.role).toBe('host');
      expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 13 });
      await closeAll();
    }, 60_000);

    it.runIf(processStart(process.pid) !== undefined)(
      'takes over a lock whose pid now belongs to another process',
      async () => {
        // The pid lives, but it started at another time than the host that wrote the lock.
        writeLock(dataDir, 14, { pid: child.pid, pidStart: '1' });
        const c = await open();
        expect(c.role).toBe('host');
        expect(await readEmbeddedHost(dataDir)).toMatchObject({ generation: 15 });
        await closeAll();
      },
      60_000,
    );
  });

  it('serves a data folder whose path is too long for a socket from a private temporary folder', async () => {
    const deep = join(dirname(dataDir), 'd'.repeat(60), 'e'.repeat(60), 'pglite');
    mkdirSync(dirname(deep), { recursive: true });
    const c = await open({ dataDir: deep });
    const host = await readEmbeddedHost(deep);
    expect(host?.socketPath.startsWith(tmpdir())).toBe(true);
    expect(host?.socketPath.length).toBeLessThanOrEqual(100);
    expect(statSync(dirname(host?.socketPath ?? '')).mode & 0o777).toBe(0o700);
    expect((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1);
    await closeAll();
    expect(existsSync(host?.socketPath ?? '')).toBe(false);
    rmSync(dirname(host?.socketPath ?? ''), { recursive: true, force: true });
  }, 60_000);

  it('validates its options', async () => {
    await expect(openEmbeddedDatabase({ dataDir: '' })).rejects.toBeInstanceOf(TypeError);
    const file = join(dirname(dataDir), 'a-file');
    writeFileSync(file, '');
    await expect(openEmbeddedDatabase({ dataDir: file })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(openEmbeddedDatabase({ dataDir, max: 0 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

/** One server process (the fixture), driven over stdin/stdout. */
class Worker {
  readonly process: ChildProcessWithoutNullStreams;
  readonly ready: Promise<number>;
  readonly fatal: string[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly pending = new Map<number, (answer: Answer) => void>();
  private next = 1;

  constructor(dataDir: string) {
    this.process = spawn(process.execPath, [WORKER, dataDir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let ready: (pid: number) => void = () => {};
    this.ready = new Promise((r) => {
      ready = r;
    });
    this.process.stderr.resume();
    createInterface({ input: this.process.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Answer & { ready?: number; fatal?: string };
      if (message.ready) ready(message.ready);
      else if (message.fatal) this.fatal.push(message.fatal);
      else {
        this.pending.get(message.id)?.(message);
        this.pending.delete(message.id);
      }
    });
    this.process.on('exit', (code, signal) => {
      this.exit = { code, signal };
      for (const resolve of this.pending.values()) resolve({ id: 0, ok: false, code: 'EXITED', message: '' });
    });
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<Answer<T>> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve as (answer: Answer) => void);
      this.process.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  async ok<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const answer = await this.call<T>(op, args);
    if (!answer.ok) throw new Error(`${op} failed: ${answer.code} ${answer.message}`);
    return answer.result as T;
  }
}

interface Answer<T = unknown> {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: T;
  readonly code?: string;
  readonly message?: string;
}

describe('embedded database across processes (the built package)', () => {
  let root: string;
  let workers: Worker[] = [];
  const dataDirOf = () => join(root, 'pglite');

  beforeAll(() => {
    if (!existsSync(DIST)) {
      throw new Error(
        `${DIST} is missing: build first (pnpm --filter @authsec/core build); the fixture runs the built package`,
      );
    }
    root = mkdtempSync(join(tmpdir(), 'authsec-procs-'));
  });

  afterAll(async () => {
    for (const w of workers) if (!w.exit) w.process.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  /** Grants `role` through `from` and waits until `to`'s warm directory sees it; returns the latency, ms. */
  const propagation = async (from: Worker, to: Worker, subject: string, role: string): Promise<number> => {
    expect(await to.ok<string[]>('roles', { subject })).not.toContain(role);
    const seen = to.ok<{ seenAt: number }>('waitRole', { subject, role, timeoutMs: 5000 });
    const { committedAt } = await from.ok<{ committedAt: number }>('grant', { subject, role });
    const { seenAt } = await seen;
    return Math.max(0, seenAt - committedAt);
  };

  it('runs three server processes on one data folder at once: each migrates, seeds, writes and reads', async () => {
    workers = [new Worker(root), new Worker(root), new Worker(root)];
    await Promise.all(workers.map((w) => w.ready));
    const opened = await Promise.all(workers.map((w) => w.ok<{ seeded: boolean; role: string }>('open')));
    expect(opened.filter((o) => o.seeded)).toHaveLength(1);
    expect(opened.map((o) => o.role).sort()).toEqual(['client', 'client', 'host']);
    const counts = await Promise.all(workers.map((w, i) => w.ok<number>('write', { subject: `s${i}` })));
    expect(Math.max(...counts)).toBe(3);
    for (const w of workers) expect(await w.ok('tenants')).toEqual(['acme-corp']);
    const host = await readEmbeddedHost(dataDirOf());
    expect(host).toMatchObject({ generation: 1, state: 'ready' });
    expect(workers.map((w) => w.process.pid)).toContain(host?.pid);
  }, 90_000);

  it('shows a grant made in one process to the directory of another within 1 s', async () => {
    const latencies: number[] = [];
    for (let i = 0; i < 6; i++) {
      const from = workers[i % 3] as Worker;
      const to = workers[(i + 1) % 3] as Worker;
      latencies.push(await propagation(from, to, `user-${i}`, 'admin'));
    }
    latencies.sort((a, b) => a - b);
    process.stderr.write(
      `embedded: cross-process grant propagation ms: ${latencies.join(', ')} (median ${latencies[3]})\n`,
    );
    expect(latencies.at(-1)).toBeLessThan(1000);
  }, 60_000);

  it('keeps every other process alive when the host is killed, and resumes within a few seconds', async () => {
    const roles = await Promise.all(workers.map((w) => w.ok<string>('role')));
    const host = workers[roles.indexOf('host')] as Worker;
    const survivors = workers.filter((w) => w !== host);
    host.process.kill('SIGKILL');
    await within(5000, () => host.exit !== undefined);

    const seen = new Set<string>();
    const started = Date.now();
    await within(15_000, async () => {
      const answers = await Promise.all(survivors.map((w) => w.call('tenants')));
      for (const a of answers) seen.add(a.ok ? 'OK' : (a.code ?? '?'));
      return answers.every((a) => a.ok);
    });
    const resumedMs = Date.now() - started;
    process.stderr.write(`embedded: service resumed ${resumedMs} ms after the host was killed\n`);
    expect([...seen].filter((s) => s !== 'OK' && s !== 'SERVICE_UNAVAILABLE')).toEqual([]);
    for (const w of survivors) {
      expect(w.exit).toBeUndefined();
      expect(w.fatal).toEqual([]);
    }
    expect((await Promise.all(survivors.map((w) => w.ok<string>('role')))).sort()).toEqual([
      'client',
      'host',
    ]);
    expect(await readEmbeddedHost(dataDirOf())).toMatchObject({ generation: 2, state: 'ready' });
    // Committed data survived the kill, and the change feed works on the new host.
    expect(await survivors[0]?.ok<number>('write', { subject: 'after' })).toBe(4);
    expect(
      await propagation(survivors[0] as Worker, survivors[1] as Worker, 'user-after', 'admin'),
    ).toBeLessThan(1000);
  }, 90_000);

  it('lets a process join later, and hands over when the host closes', async () => {
    const joiner = new Worker(root);
    workers.push(joiner);
    await joiner.ready;
    expect(await joiner.ok<{ seeded: boolean; role: string }>('open')).toMatchObject({
      seeded: false,
      role: 'client',
    });
    const alive = workers.filter((w) => !w.exit);
    const roles = await Promise.all(alive.map((w) => w.ok<string>('role')));
    const host = alive[roles.indexOf('host')] as Worker;
    await host.ok('close');
    const rest = alive.filter((w) => w !== host);
    await within(10_000, async () =>
      (await Promise.all(rest.map((w) => w.call('tenants')))).every((a) => a.ok),
    );
    expect((await Promise.all(rest.map((w) => w.ok<string>('role')))).sort()).toEqual(['client', 'host']);
    expect(await readEmbeddedHost(dataDirOf())).toMatchObject({ generation: 3 });
    for (const w of rest) expect(w.fatal).toEqual([]);
    await Promise.all(rest.map((w) => w.ok('close')));
  }, 90_000);
});
