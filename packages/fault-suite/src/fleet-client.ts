/**
 * The parent's side of the fleet ({@link ./fleet.ts}): starts it in a child process and talks to it over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FleetCommand, FleetConfig, FleetMessage, FleetStats, MountName } from './fleet-protocol.js';

/** The built fleet script (from `src/` under vitest and from `dist/` alike). */
const FLEET_SCRIPT = fileURLToPath(new URL('../dist/fleet.js', import.meta.url));

/** A running fleet. */
export interface Fleet {
  readonly child: ChildProcess;
  readonly urls: Readonly<Record<MountName, string>>;
  /** Everything the fleet wrote on stderr so far (its error log). */
  stderr(): string;
  /** The exit code, or `undefined` while it runs. */
  exitCode(): number | null | undefined;
  stats(): Promise<FleetStats>;
  /** Flushes the audit sink (a failure leaves the events buffered), then reports. */
  flush(): Promise<FleetStats>;
  /** Closes the mounts and the storage; resolves with the last counters and the exit code. */
  close(): Promise<{ stats: FleetStats; code: number | null }>;
  /** Kills the fleet if it still runs. */
  kill(): void;
}

function next<T extends FleetMessage['type']>(
  child: ChildProcess,
  type: T,
): Promise<Extract<FleetMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FleetMessage) => {
      if (message?.type !== type) return;
      cleanup();
      resolve(message as Extract<FleetMessage, { type: T }>);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`the fleet exited (code ${String(code)}) before answering '${type}'`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Starts the fleet on `config`; resolves once every mount serves. */
export async function startFleet(config: FleetConfig): Promise<Fleet> {
  const child = fork(FLEET_SCRIPT, [], {
    env: { ...process.env, AUTHSEC_FLEET: JSON.stringify(config) },
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  let ready: Extract<FleetMessage, { type: 'ready' }>;
  try {
    ready = await next(child, 'ready');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  const ask = (command: FleetCommand['type']) => {
    const answer = next(child, command === 'close' ? 'closed' : 'stats');
    child.send({ type: command } satisfies FleetCommand);
    return answer;
  };
  return {
    child,
    urls: ready.urls,
    stderr: () => stderr,
    exitCode: () => exitCode,
    stats: async () => (await ask('stats')).stats,
    flush: async () => (await ask('flush')).stats,
    async close() {
      const { stats } = (await ask('close')) as Extract<FleetMessage, { type: 'closed' }>;
      return { stats, code: await exited };
    },
    kill() {
      if (exitCode === undefined) child.kill('SIGKILL');
    },
  };
}
