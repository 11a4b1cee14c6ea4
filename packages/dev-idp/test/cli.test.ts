import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { formatBanner, parseCliArgs, runCli } from '../src/cli-main.js';

function sink() {
  let text = '';
  return { write: (chunk: string) => (text += chunk), text: () => text };
}

describe('parseCliArgs', () => {
  it('has defaults and reads --flag value and --flag=value', () => {
    expect(parseCliArgs([])).toEqual({ ok: true, options: { port: 4000, host: '127.0.0.1', help: false } });
    expect(
      parseCliArgs(['--port=0', '--host', '::1', '--users', 'u.json', '--issuer', 'http://localhost:4000']),
    ).toEqual({
      ok: true,
      options: { port: 0, host: '::1', help: false, usersFile: 'u.json', issuer: 'http://localhost:4000' },
    });
    expect(parseCliArgs(['--help'])).toMatchObject({ ok: true, options: { help: true } });
  });

  it.each([
    [['--port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--port'], '--port needs a value'],
    [['--port', '--host', 'x'], '--port needs a value'],
    [['--host', '0.0.0.0'], '--host'],
    [['--issuer', 'ftp://x'], '--issuer'],
    [['--issuer', 'http://localhost:4000/path'], '--issuer'],
    [['--users='], '--users'],
    [['--verbose'], 'unknown flag --verbose'],
    [['--port', '1', '--port', '2'], '--port given twice'],
    [['serve'], 'unexpected argument serve'],
  ])('refuses %j, naming %s', (argv, needle) => {
    const result = parseCliArgs(argv);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain(needle);
  });
});

describe('runCli', () => {
  it('exits 2 on bad usage, with the message and the usage on stderr', async () => {
    const stderr = sink();
    const code = await runCli(['--port', 'x'], { stdout: sink(), stderr, env: {} });
    expect(code).toBe(2);
    expect(stderr.text()).toContain('authsec-dev-idp: --port must be an integer');
    expect(stderr.text()).toContain('usage: authsec-dev-idp');
  });

  it('exits 2 naming --users when the users file cannot be read', async () => {
    const stderr = sink();
    expect(
      await runCli(['--port', '0', '--users', '/nonexistent/users.json'], {
        stdout: sink(),
        stderr,
        env: {},
      }),
    ).toBe(2);
    expect(stderr.text()).toContain('--users');
  });

  it('exits 1 under NODE_ENV=production', async () => {
    const stderr = sink();
    expect(await runCli(['--port', '0'], { stdout: sink(), stderr, env: { NODE_ENV: 'production' } })).toBe(
      1,
    );
    expect(stderr.text()).toContain('NODE_ENV=production');
  });

  it('serves until stopped, with a banner on stderr and nothing on stdout', async () => {
    const stdout = sink();
    const stderr = sink();
    let stop: () => void = () => {};
    const stopSignal = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const running = runCli(['--port', '0'], { stdout, stderr, env: {}, stopSignal });
    await expect.poll(() => stderr.text(), { timeout: 10_000 }).toContain('DEVELOPMENT ONLY');
    const issuer = /issuer\s+(http:\/\/\S+)/.exec(stderr.text())?.[1];
    expect(issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stderr.text()).toContain('admin@acme-corp.example  password: admin-password');
    expect(stderr.text()).toContain('analyst@acme-corp.example  password: analyst-password');
    expect((await fetch(`${issuer}/.well-known/oauth-authorization-server`)).status).toBe(200);
    stop();
    expect(await running).toBe(0);
    expect(stdout.text()).toBe('');
  });

  it('formats the banner from the running IdP', () => {
    const banner = formatBanner({
      issuer: 'http://127.0.0.1:4000',
      url: 'http://127.0.0.1:4000',
      jwksUrl: 'http://127.0.0.1:4000/jwks',
      users: [],
      close: async () => {},
      issueToken: async () => '',
      rotateKeys: async () => {},
    });
    expect(banner).toContain('development IdP: DEVELOPMENT ONLY');
    expect(banner).toContain('http://127.0.0.1:4000/.well-known/openid-configuration');
  });
});

const BUILT_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function runBuilt(args: string[], until?: (stderr: string) => boolean) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [BUILT_CLI, ...args], {
      env: { ...process.env, NODE_ENV: 'development' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    let killed = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!killed && until?.(stderr)) killed = child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!existsSync(BUILT_CLI))(
  'the built command (skipped until `pnpm --filter @authsec/dev-idp build`)',
  () => {
    it('exits 2 on bad usage', async () => {
      const { code, stderr } = await runBuilt(['--port', 'nope']);
      expect(code).toBe(2);
      expect(stderr).toContain('--port must be an integer');
    });

    it('starts, prints the banner on stderr only, and stops on SIGTERM with exit 0', async () => {
      const { code, stdout, stderr } = await runBuilt(['--port', '0'], (text) =>
        text.includes('Press Ctrl+C'),
      );
      expect(stderr).toContain('DEVELOPMENT ONLY');
      expect(stdout).toBe('');
      expect({ code, stderr }).toMatchObject({ code: 0 });
    });
  },
);
