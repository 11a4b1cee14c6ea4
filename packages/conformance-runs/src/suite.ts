import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One check of a scenario, as the suite writes it to `checks.json`. */
export interface Check {
  readonly id: string;
  readonly status: string;
  readonly errorMessage?: string;
}

/**
 * Runs the suite's `server` command (`command` and its first `args` start it: a Node binary and the CLI) against
 * `url` with `args`, and reads every scenario's `checks.json` from its output folder. A non-zero exit only means
 * some scenario failed; the per-scenario files say which. Bounded by `timeoutMs`.
 */
export async function runConformanceSuite(
  command: string,
  prefix: readonly string[],
  url: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly timeoutMs: number },
): Promise<Map<string, Check[]>> {
  const out = await mkdtemp(join(tmpdir(), 'authsec-conformance-'));
  try {
    await new Promise<void>((done) => {
      execFile(
        command,
        [...prefix, 'server', '--url', url, ...args, '-o', out],
        { cwd: options.cwd, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
        () => done(),
      );
    });
    const results = new Map<string, Check[]>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.name === 'checks.json') {
          // Result directories are named `server-<scenario>-<ISO timestamp>`.
          const scenario = dir
            .slice(out.length + 1)
            .split('/')[0]!
            .replace(/^server-/, '')
            .replace(/-\d{4}-\d{2}-\d{2}T[\dZ-]+$/, '');
          results.set(scenario, JSON.parse(await readFile(path, 'utf8')) as Check[]);
        }
      }
    };
    await walk(out);
    return results;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
