import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, collector, ENGINES, type Engine, json } from './helpers.js';

interface VerifyJson {
  tenant: string;
  ok: boolean;
  rows: number;
  problems: { seq: number | null; kind: string; detail: string }[];
}

describe.each(ENGINES)('audit verify and tail ($name)', ({ name, create }) => {
  let engine: Engine;
  const run = (...args: string[]) => cli(args, engine.env);

  beforeAll(async () => {
    engine = await create();
    for (const args of [
      ['migrate'],
      ['tenant', 'create', 'acme'],
      ['tenant', 'create', 'other'],
      ['role', 'add', 'admin', '--tenant', 'acme'],
      ['role', 'add', 'viewer', '--tenant', 'acme'],
      ['grant', 'alice', '--tenant', 'acme', '--role', 'admin'],
    ]) {
      const result = await run(...args);
      if (result.code !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
    }
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('verifies an untouched log: OK and the row count, exit 0', async () => {
    const result = await run('audit', 'verify', '--tenant', 'acme');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("OK: the audit log of tenant 'acme' verifies (4 rows)\n");
    const asJson = json<VerifyJson>(await run('audit', 'verify', '--tenant', 'acme', '--json'));
    expect(asJson).toMatchObject({ tenant: 'acme', ok: true, rows: 4, problems: [] });
  });

  it('reports a row edited directly in SQL as modified, with its seq, and exits 1', async () => {
    // The command has closed its database: PGlite serves one instance per folder.
    const sql = await engine.openSql();
    try {
      await sql.query('ALTER TABLE "tenant_acme".audit_events DISABLE TRIGGER USER');
      await sql.query(`UPDATE "tenant_acme".audit_events SET target = 'role add superuser' WHERE seq = 2`);
      await sql.query('ALTER TABLE "tenant_acme".audit_events ENABLE TRIGGER USER');
    } finally {
      await sql.close();
    }
    const result = await run('audit', 'verify', '--tenant', 'acme');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^SEQ\s+KIND\s+DETAIL\n2\s+modified\s+row 2 does not match its MAC/);
    expect(result.stdout).toContain("FAILED: 1 problem(s) in the audit log of tenant 'acme' (4 rows)");

    const asJson = await run('audit', 'verify', '--tenant', 'acme', '--json');
    expect(asJson.code).toBe(1);
    expect(json<VerifyJson>(asJson)).toMatchObject({
      ok: false,
      rows: 4,
      problems: [{ seq: 2, kind: 'modified' }],
    });
    // The other tenant's chain is untouched.
    expect((await run('audit', 'verify', '--tenant', 'other')).code).toBe(0);
  });

  it('reports deleted rows, and refuses a tenant that does not exist', async () => {
    const sql = await engine.openSql();
    try {
      await sql.query('ALTER TABLE "tenant_other".audit_events DISABLE TRIGGER USER');
      await sql.query('DELETE FROM "tenant_other".audit_events');
      await sql.query('ALTER TABLE "tenant_other".audit_events ENABLE TRIGGER USER');
    } finally {
      await sql.close();
    }
    const result = json<VerifyJson>(await run('audit', 'verify', '--tenant', 'other', '--json'));
    expect(result).toMatchObject({ ok: false, rows: 0, problems: [{ seq: 1, kind: 'truncated' }] });

    const unknown = await run('audit', 'verify', '--tenant', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("authsec: tenant 'nope' does not exist\n");
  });

  it('tail --follow prints the latest events as JSON lines and stops when aborted', async () => {
    const controller = new AbortController();
    const stdout = collector();
    const following = cli(
      ['audit', 'tail', '--tenant', 'acme', '--follow', '--json', '--limit', '2'],
      engine.env,
      {
        signal: controller.signal,
        stdout,
      },
    );
    await expect.poll(() => stdout.text.split('\n').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    if (name === 'postgres') {
      // A second process (here: a second run) changes the tenant; the follower sees the event.
      const change = await run('role', 'add', 'auditor', '--tenant', 'acme');
      expect(change.code, change.stderr).toBe(0);
      await expect.poll(() => stdout.text, { timeout: 10_000 }).toContain('role add auditor');
    }
    controller.abort();
    const result = await following;
    expect(result.code, result.stderr).toBe(0);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; target: string });
    expect(events.slice(0, 2).map((e) => e.seq)).toEqual([3, 4]);
    if (name === 'postgres') expect(events.at(-1)?.target).toBe('role add auditor');
  });

  it('a stop signal interrupts any other command with exit 130', async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await cli(['tenant', 'list'], engine.env, { signal: controller.signal });
    expect(result.code).toBe(130);
    expect(result.stderr).toContain('interrupted');
  });
});
