import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, ENGINES, type Engine, json } from './helpers.js';

interface VerifyJson {
  tenant: string;
  ok: boolean;
  rows: number;
  problems: { kind: string }[];
  checkpoint?: {
    ok: boolean;
    checked: number;
    problems: { kind: string; seq: number | null; detail: string }[];
  };
}

describe.each(ENGINES)('audit checkpoint and verify --checkpoint ($name)', ({ create }) => {
  let engine: Engine;
  let file: string;
  const run = (...args: string[]) => cli(args, engine.env);

  async function sql(...statements: string[]) {
    // PGlite serves one instance per folder: the client is closed before the next command runs.
    const client = await engine.openSql();
    try {
      for (const statement of statements) await client.query(statement);
    } finally {
      await client.close();
    }
  }

  beforeAll(async () => {
    engine = await create();
    file = join(engine.dataDir, 'anchors', 'checkpoints.jsonl');
    for (const args of [
      ['migrate'],
      ['tenant', 'create', 'acme'],
      ['tenant', 'create', 'beta'],
      ['role', 'add', 'admin', '--tenant', 'acme'],
      ['role', 'add', 'viewer', '--tenant', 'acme'],
      ['role', 'add', 'editor', '--tenant', 'acme'],
      ['role', 'add', 'admin', '--tenant', 'beta'],
    ]) {
      const result = await run(...args);
      if (result.code !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
    }
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('anchors the verified head in a 0600 file; an untouched log verifies with it, exit 0', async () => {
    mkdirSync(join(engine.dataDir, 'anchors'), { recursive: true });
    const written = await run('audit', 'checkpoint', '--tenant', 'acme', '--file', file);
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout).toMatch(/^Checkpoint of tenant 'acme' at row \d+ appended to /);
    const beta = await run('audit', 'checkpoint', '--tenant', 'beta', '--file', file, '--json');
    expect(beta.code, beta.stderr).toBe(0);
    expect(json<{ checkpoint: { tenant: string; seq: number } }>(beta).checkpoint).toMatchObject({
      tenant: 'beta',
    });
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);

    const verified = await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', file);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(
      /^OK: the audit log of tenant 'acme' verifies \(\d+ rows\), and holds its newest checkpoint \(row \d+, .+\)\n$/,
    );
    // Rows appended after the checkpoint are fine.
    expect((await run('role', 'add', 'auditor', '--tenant', 'acme')).code).toBe(0);
    expect((await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', file)).code).toBe(0);
    const asJson = json<VerifyJson>(
      await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', file, '--json'),
    );
    expect(asJson).toMatchObject({ ok: true, checkpoint: { ok: true, checked: 1, problems: [] } });
  });

  it('fails (exit 1) once the newest rows are deleted and the head rewound, which verify alone misses', async () => {
    const t = '"tenant_acme"';
    await sql(
      `ALTER TABLE ${t}.audit_events DISABLE TRIGGER USER`,
      `DELETE FROM ${t}.audit_events WHERE seq > 2`,
      `UPDATE ${t}.audit_head SET seq = 2, mac = (SELECT mac FROM ${t}.audit_events WHERE seq = 2)`,
      `ALTER TABLE ${t}.audit_events ENABLE TRIGGER USER`,
    );
    const alone = await run('audit', 'verify', '--tenant', 'acme');
    expect(alone.code).toBe(0);
    expect(alone.stdout).toContain('(2 rows)');

    const result = await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', file);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^SEQ\s+KIND\s+DETAIL\n\d+\s+shortened\s+the checkpoint of .+ row \d+ is gone/,
    );
    expect(result.stdout).toContain("FAILED: 1 problem(s) in the audit log of tenant 'acme' (2 rows)");
    expect(result.stdout).toContain('rows were deleted from its end');
    const asJson = await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', file, '--json');
    expect(asJson.code).toBe(1);
    expect(json<VerifyJson>(asJson)).toMatchObject({
      ok: false,
      rows: 2,
      problems: [],
      checkpoint: { ok: false, problems: [{ kind: 'shortened' }] },
    });

    // A shortened log is never anchored again.
    const again = await run('audit', 'checkpoint', '--tenant', 'acme', '--file', file);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('does not match the checkpoints');
  });

  it('fails (exit 1) on an emptied table with a reset head', async () => {
    const t = '"tenant_beta"';
    await sql(
      `ALTER TABLE ${t}.audit_events DISABLE TRIGGER USER`,
      `DELETE FROM ${t}.audit_events`,
      `UPDATE ${t}.audit_head SET seq = 0, mac = ''`,
      `ALTER TABLE ${t}.audit_events ENABLE TRIGGER USER`,
    );
    expect((await run('audit', 'verify', '--tenant', 'beta')).stdout).toContain('(0 rows)');
    const result = await run('audit', 'verify', '--tenant', 'beta', '--checkpoint', file);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/shortened\s+the checkpoint of .+ but the log is empty: it was emptied/);
    expect(result.stdout).toContain("FAILED: 1 problem(s) in the audit log of tenant 'beta' (0 rows)");
  });

  it('fails on a forged checkpoint, on a file without the tenant, and on a file that cannot be read', async () => {
    const forgedFile = join(engine.dataDir, 'anchors', 'forged.jsonl');
    writeFileSync(forgedFile, readFileSync(file, 'utf8').replace(/"seq":(\d+)/, '"seq":1$1'));
    const forged = json<VerifyJson>(
      await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', forgedFile, '--json'),
    );
    expect(forged.checkpoint?.problems.map((p) => p.kind)).toEqual([
      'checkpoint_invalid',
      'checkpoint_missing',
    ]);

    const empty = join(engine.dataDir, 'anchors', 'empty.jsonl');
    writeFileSync(empty, '');
    const none = await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', empty);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('checkpoint_missing');

    const missing = join(engine.dataDir, 'anchors', 'nope.jsonl');
    expect(existsSync(missing)).toBe(false);
    const unreadable = await run('audit', 'verify', '--tenant', 'acme', '--checkpoint', missing);
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toContain('cannot be read (ENOENT)');
  });
});
