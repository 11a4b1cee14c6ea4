import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import {
  type AuditEvent,
  type AuthSecEnvOptions,
  AuthSecError,
  authSecOptionsFromEnv,
  isAuthSecError,
  type Logger,
  type MasterKeyRing,
  resolveMasterKey,
  type SecretBackend,
  toAuthSecError,
} from '@authsec/core';
import {
  createPgClient,
  createPostgresSecretBackend,
  openStorage,
  type Storage,
} from '@authsec/core/postgres';
import type { AdminChange, CommandContext, CommandEntry } from './command.js';
import { COMMANDS } from './commands/index.js';
import { CommandFailure, EXIT, Interrupted, UsageError } from './errors.js';
import { commandHelp, groupHelp, topHelp } from './help.js';
import { type InputStream, readAll } from './input.js';
import { cliLogLevel, createCliLogger } from './logger.js';
import { createOutput, jsonText, type TextSink, visible } from './output.js';
import { type Invocation, parseInvocation } from './parse.js';

export type { InputStream } from './input.js';

/** @deprecated Use {@link InputStream}: the command's stdin, which `service set|rotate` also read. */
export type StopStream = InputStream;

/** What {@link run} reads and writes instead of the process's own streams, so tests can run it in-process. */
export interface CliIo {
  /** Results: human text, or JSON with `--json`. */
  readonly stdout: TextSink;
  /** Progress, warnings and errors. */
  readonly stderr: TextSink;
  /** The environment (`AUTHSEC_*`, `NODE_ENV`, `HOME`, ...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Standard input: `service set|rotate` read the secret value from it, and its end stops `audit tail
   * --follow`. Default: none (no value can be read; `audit tail --follow` runs until the signal aborts).
   */
  readonly stdin?: InputStream;
  /** Aborting it stops `audit tail --follow` (exit 0) and interrupts any other command (exit 130). */
  readonly signal?: AbortSignal;
}

/** The version of this package. */
export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? '0.0.0';
}

function osUser(env: CliIo['env']): string {
  try {
    return userInfo().username;
  } catch {
    return env.USER || env.USERNAME || env.LOGNAME || 'unknown';
  }
}

function causeText(error: unknown, depth = 0): string | undefined {
  if (depth > 5 || typeof error !== 'object' || error === null) return undefined;
  // The innermost cause is the driver's own reason ("connect ECONNREFUSED ...", "permission denied ...").
  const inner = causeText((error as { cause?: unknown }).cause, depth + 1);
  if (inner) return inner;
  const message = (error as { message?: unknown }).message;
  if (typeof message === 'string' && message.trim() !== '') return message.split('\n')[0];
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.length > 0) return causeText(errors[0], depth + 1);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

interface Failure {
  readonly exit: number;
  readonly code: string;
  readonly message: string;
  readonly command?: string | undefined;
}

/** Turns anything thrown into an exit code and a message that names what is at fault. */
function describeFailure(error: unknown, env: CliIo['env']): Failure {
  if (error instanceof UsageError) {
    return { exit: EXIT.usage, code: 'USAGE', message: error.message, command: error.command };
  }
  if (error instanceof Interrupted)
    return { exit: EXIT.interrupted, code: 'INTERRUPTED', message: 'interrupted' };
  if (error instanceof CommandFailure) return { exit: EXIT.failed, code: error.code, message: error.message };
  if (isAuthSecError(error)) {
    let message = error.message;
    const cause = causeText(error.cause);
    const withCause = error.code === 'SERVICE_UNAVAILABLE' || error.code === 'INTERNAL';
    if (cause && withCause && !message.includes(cause)) message += ` (${cause})`;
    if (error.code === 'SERVICE_UNAVAILABLE') {
      message += env.AUTHSEC_DATABASE_URL
        ? '; check AUTHSEC_DATABASE_URL and that the server is running'
        : '; check AUTHSEC_DATA_DIR (the embedded database) and that no other process holds it';
    }
    return { exit: EXIT.failed, code: error.code, message };
  }
  return {
    exit: EXIT.failed,
    code: 'INTERNAL',
    message: `internal error: ${causeText(error) ?? String(error)}`,
  };
}

function reportFailure(io: CliIo, json: boolean, failure: Failure, error: unknown, logger: Logger): void {
  if (json) {
    io.stderr.write(`${jsonText({ error: { code: failure.code, message: failure.message } })}\n`);
  } else {
    io.stderr.write(`authsec: ${visible(failure.message)}\n`);
    if (failure.exit === EXIT.usage) {
      io.stderr.write(`Run 'authsec help${failure.command ? ` ${failure.command}` : ''}' for usage.\n`);
    }
  }
  if (failure.code === 'INTERNAL' && error instanceof Error) logger.debug(error.stack ?? error.message);
}

function helpText(invocation: Extract<Invocation, { kind: 'help' }>): string {
  const { entry, command } = invocation;
  if (!entry) return topHelp(COMMANDS, cliVersion());
  if (command)
    return commandHelp(entry.name === command.name ? command.name : `${entry.name} ${command.name}`, command);
  return 'commands' in entry ? groupHelp(entry) : commandHelp(entry.name, entry);
}

/**
 * Runs the `authsec` command line `argv` (without the node and script paths) and returns its exit code: 0
 * done, 1 failed, 2 usage, 130 interrupted. Never calls `process.exit`; everything it prints goes to `io`.
 * The database is opened only for commands that need it, and always closed before this returns.
 */
export async function run(
  argv: readonly string[],
  io: CliIo,
  table: readonly CommandEntry[] = COMMANDS,
): Promise<number> {
  const logger = createCliLogger(io.stderr, cliLogLevel(io.env));
  const json = argv.slice(0, Math.max(0, argv.indexOf('--')) || argv.length).includes('--json');
  let invocation: Invocation;
  try {
    invocation = parseInvocation(argv, table);
  } catch (error) {
    const failure = describeFailure(error, io.env);
    reportFailure(io, json, failure, error, logger);
    return failure.exit;
  }
  if (invocation.kind === 'version') {
    io.stdout.write(`${cliVersion()}\n`);
    return EXIT.ok;
  }
  if (invocation.kind === 'help') {
    if (invocation.error) {
      const failure = describeFailure(invocation.error, io.env);
      reportFailure(io, json, failure, invocation.error, logger);
      if (!json) io.stderr.write(`\n${helpText(invocation)}`);
      return failure.exit;
    }
    io.stdout.write(helpText(invocation));
    return EXIT.ok;
  }
  return execute(invocation, io, logger);
}

async function execute(
  invocation: Extract<Invocation, { kind: 'command' }>,
  io: CliIo,
  logger: Logger,
): Promise<number> {
  const out = createOutput(io.stdout, io.stderr);
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort();
  if (io.signal?.aborted) controller.abort();
  io.signal?.addEventListener('abort', onOuterAbort, { once: true });

  let config: AuthSecEnvOptions | undefined;
  let key: MasterKeyRing | undefined;
  let storage: Promise<Storage> | undefined;
  const readConfig = (): AuthSecEnvOptions => {
    config ??= authSecOptionsFromEnv(io.env);
    return config;
  };
  const masterKey = async (): Promise<MasterKeyRing> => {
    const c = readConfig();
    key ??= resolveMasterKey({
      masterKey: c.masterKey,
      dataDir: c.dataDir,
      development: io.env.NODE_ENV !== 'production',
      logger,
    });
    return key;
  };
  const open = async (): Promise<Storage> => {
    const c = readConfig();
    const ring = await masterKey();
    if (c.databaseUrl) await probe(c.databaseUrl);
    return openStorage({
      databaseUrl: c.databaseUrl,
      dataDir: c.dataDir,
      masterKey: ring,
      migrate: false,
      logger,
    });
  };
  let secrets: Promise<SecretBackend> | undefined;
  const openSecrets = async (): Promise<SecretBackend> => {
    const vault = readConfig().vault;
    if (vault) {
      // Loaded only when used: the Vault client is an optional part of core.
      const { createVaultSecretBackend } = await import('@authsec/core/vault').catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
        throw new AuthSecError(
          'CONFIG_INVALID',
          `AUTHSEC_VAULT_ADDR is set, but the Vault client cannot be loaded (${causeText(error)}): install node-vault`,
          { cause: error },
        );
      });
      // The origin only (the address is a valid URL: the configuration checked it): it may carry user info,
      // which is no business of an error message.
      const origin = new URL(vault.addr).origin;
      const explain = (error: unknown) => vaultFailure(error, origin);
      const backend = createVaultSecretBackend({ ...vault, logger });
      return {
        kind: backend.kind,
        write: (tenantId, input) => backend.write(tenantId, input).catch(explain),
        read: (tenantId, name, options) => backend.read(tenantId, name, options).catch(explain),
        list: (tenantId) => backend.list(tenantId).catch(explain),
        rotate: (tenantId, name, credentials, options) =>
          backend.rotate(tenantId, name, credentials, options).catch(explain),
        delete: (tenantId, name) => backend.delete(tenantId, name).catch(explain),
        close: () => backend.close(),
      };
    }
    const s = await ctx.storage();
    return createPostgresSecretBackend({ tenancy: s.tenancy, masterKey: await masterKey() });
  };
  const user = `cli:${osUser(io.env)}`;
  // A command that claims the stop signal (audit tail --follow) ends normally when it fires; any other is
  // interrupted.
  let claimed = false;
  let stopWatching: (() => void) | undefined;

  const ctx: CommandContext = {
    command: invocation.name,
    args: invocation.args,
    string(name) {
      const v = invocation.flags[name];
      if (Array.isArray(v)) return v[v.length - 1];
      return typeof v === 'string' ? v : undefined;
    },
    strings(name) {
      const v = invocation.flags[name];
      if (Array.isArray(v)) return v;
      return typeof v === 'string' ? [v] : [];
    },
    boolean: (name) => invocation.flags[name] === true,
    json: invocation.json,
    out,
    untilStopped() {
      if (!claimed) {
        claimed = true;
        stopWatching = watchStdin(io, controller);
      }
      return controller.signal;
    },
    storage() {
      storage ??= open();
      return storage;
    },
    masterKey,
    issuers: () => readConfig().issuers.map((i) => i.issuer),
    secrets() {
      secrets ??= openSecrets();
      return secrets;
    },
    secretsWhere: () => (readConfig().vault ? 'Vault' : 'the encrypted PostgreSQL store'),
    stdinIsTTY: io.stdin?.isTTY === true,
    async readStdin(maxBytes) {
      if (!io.stdin) return undefined;
      return readAll(io.stdin, maxBytes, controller.signal);
    },
    async requireTenant(tenantId) {
      const s = await ctx.storage();
      const record = await s.tenancy.get(tenantId);
      if (!record) throw new CommandFailure('TENANT_UNKNOWN', `tenant '${tenantId}' does not exist`);
      return record;
    },
    async recordChange(change: AdminChange) {
      const s = await ctx.storage();
      const event: AuditEvent = {
        time: new Date().toISOString(),
        action: change.action ?? 'admin.change',
        decision: 'allow',
        subject: user,
        tenantId: change.tenantId,
        clientId: 'authsec-cli',
        target: change.target,
        reason: undefined,
        failed: undefined,
        argumentsDigest: undefined,
        latencyMicros: Math.max(0, Math.round((performance.now() - change.startedAt) * 1000)),
      };
      s.audit.write(event);
      try {
        await s.audit.flush();
      } catch (error) {
        const why = describeFailure(error, io.env).message;
        throw new CommandFailure(
          'AUDIT_FAILED',
          change.action === 'service.read'
            ? `nothing was shown: the audit event of this read in tenant '${change.tenantId}' could not be written: ${why}`
            : `the change to tenant '${change.tenantId}' was made, but its audit event could not be written: ${why}`,
        );
      }
    },
  };
  let exit: number;
  try {
    const work = invocation.spec.run(ctx);
    exit = (await raceAbort(work, controller.signal, () => claimed)) ?? EXIT.ok;
  } catch (error) {
    const failure = describeFailure(error, io.env);
    reportFailure(io, invocation.json, failure, error, logger);
    exit = failure.exit;
  } finally {
    stopWatching?.();
    io.signal?.removeEventListener('abort', onOuterAbort);
  }
  // The secret store may sit on the storage's tenancy: close it first.
  const resources: (Promise<{ close(): Promise<void> }> | undefined)[] = [secrets, storage];
  for (const resource of resources) {
    if (!resource) continue;
    try {
      const opened = await resource.catch(() => undefined);
      await opened?.close();
    } catch (error) {
      if (exit === EXIT.ok) {
        const failure = describeFailure(error, io.env);
        reportFailure(io, invocation.json, failure, error, logger);
        exit = failure.exit;
      }
    }
  }
  return exit;
}

/**
 * Vault being down, sealed or refusing is reported with the variables to check (the runner's own hint for
 * SERVICE_UNAVAILABLE names the database).
 */
function vaultFailure(error: unknown, addr: string): never {
  if (isAuthSecError(error) && error.code === 'SERVICE_UNAVAILABLE') {
    const cause = causeText(error.cause);
    const detail = cause && !error.message.includes(cause) ? ` (${cause})` : '';
    throw new CommandFailure(
      'SERVICE_UNAVAILABLE',
      `${error.message}${detail}; check AUTHSEC_VAULT_ADDR (${addr}), the Vault credentials, and that Vault is running and unsealed`,
    );
  }
  throw error;
}

/** Aborts `controller` when `io.stdin` ends or closes; returns a function that stops watching. */
function watchStdin(io: CliIo, controller: AbortController): (() => void) | undefined {
  const stdin = io.stdin;
  if (!stdin) return undefined;
  const stop = () => controller.abort();
  stdin.on('end', stop);
  stdin.on('close', stop);
  stdin.resume?.();
  return () => {
    stdin.removeListener('end', stop);
    stdin.removeListener('close', stop);
    stdin.pause?.();
  };
}

/** Settles with `work`, or rejects with {@link Interrupted} when `signal` aborts and nobody claimed it. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal, claimed: () => boolean): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      if (!claimed()) reject(new Interrupted());
    };
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Fails fast, with the driver's reason, when the PostgreSQL server cannot be reached. */
async function probe(connectionString: string): Promise<void> {
  const client = await createPgClient({ connectionString, max: 1, connectTimeoutMs: 5000 });
  try {
    await client.query('SELECT 1');
  } catch (error) {
    const err = toAuthSecError(error);
    if (err.code === 'SERVICE_UNAVAILABLE') throw err;
    throw new AuthSecError(
      'CONFIG_INVALID',
      `Cannot use the database AUTHSEC_DATABASE_URL names (${causeText(error) ?? err.message})`,
      { cause: error },
    );
  } finally {
    await client.close();
  }
}
