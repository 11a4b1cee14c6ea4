/**
 * The demo (`pnpm demo`, the README quick start's first command, runs it after the build) walks the brief with
 * two users (one client pinned to 2026-07-28, the other in legacy mode) and exits non-zero as soon as a step does not behave as shown. Run as a user would: no
 * configuration at all, only PATH and HOME.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEMO_JS } from './helpers/stdio.js';

describe('the demo', () => {
  it('runs on no configuration, exits 0 and says every step behaved as shown', async () => {
    const child = spawn(process.execPath, [DEMO_JS], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect({ code, stdout, stderr }).toMatchObject({ code: 0 });
    expect(stdout).toContain('Every step behaved as shown');
    expect(stdout).toContain('Hello, admin@acme-corp.example!');
    // One client pinned to 2026-07-28, the other in legacy mode; a hidden tool is refused like an unknown one.
    expect(stdout).toContain('admin@acme-corp.example · 2026-07-28');
    expect(stdout).toContain('analyst@acme-corp.example · legacy');
    expect(stdout).toMatch(
      /create_resource \(needs scope write; hidden, called anyway\) → refused: .*not found/,
    );
    expect(stdout).not.toContain('eyJ');
  }, 60_000);
});
