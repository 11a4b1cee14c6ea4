import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

// The README's test command builds first (`pnpm --filter @authsec/cli build`); this spawns what was built.
const BIN = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

interface Spawned {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stdout(): string;
}

function start(args: readonly string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stdout: () => stdout };
}

async function exec(args: readonly string[], env: Record<string, string> = {}) {
  const spawned = start(args, env);
  spawned.child.stdin?.end();
  return spawned.done;
}

describe('the built authsec binary', () => {
  const dataDir = tempDir();
  const env = { AUTHSEC_DATA_DIR: dataDir, AUTHSEC_MASTER_KEY: randomBytes(32).toString('base64') };
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints help and exits 0', async () => {
    const result = await exec(['--help']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Usage: authsec <command> [arguments] [flags]');
  });

  it('sets the exit code: 2 for usage, 1 for failures, 0 when done', async () => {
    expect((await exec(['tenant', 'creat', 'acme'])).code).toBe(2);
    const unmigrated = await exec(['tenant', 'list'], env);
    expect(unmigrated.code).toBe(1);
    expect(unmigrated.stderr).toContain('run `authsec migrate`');
    expect((await exec(['migrate'], env)).code).toBe(0);
    expect((await exec(['tenant', 'create', 'acme'], env)).code).toBe(0);
    const listed = await exec(['tenant', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({ tenants: [{ id: 'acme' }] });
  });

  it('service set reads the value from a piped stdin, and the process exits', async () => {
    const value = `bin-${randomBytes(12).toString('hex')}`;
    const set = start(['service', 'set', 'GitHub API Integration', '--tenant', 'acme'], env);
    set.child.stdin?.end(`${value}\n`);
    const stored = await set.done;
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stdout + stored.stderr).not.toContain(value);
    const got = await exec(
      ['service', 'get', 'GitHub API Integration', '--tenant', 'acme', '--reveal', '--json'],
      env,
    );
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ credentials: { access_token: value } });
  });

  it('audit tail --follow stops, exit 0, when its standard input closes', async () => {
    const follow = start(['audit', 'tail', '--tenant', 'acme', '--follow'], env);
    await expect.poll(follow.stdout, { timeout: 15_000 }).toContain('tenant create acme');
    follow.child.stdin?.end();
    const result = await follow.done;
    expect(result.code, result.stderr).toBe(0);
  });

  it('audit tail --follow stops, exit 0, on SIGINT', async () => {
    const follow = start(['audit', 'tail', '--tenant', 'acme', '--follow', '--json'], env);
    await expect
      .poll(follow.stdout, { timeout: 15_000 })
      .toContain('"tenant create acme --placement schema"');
    follow.child.kill('SIGINT');
    const result = await follow.done;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n')[0]!)).toMatchObject({
      seq: 1,
      action: 'admin.change',
    });
  });
});
