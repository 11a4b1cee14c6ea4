import type { AuditAction, MasterKeyRing, SecretBackend } from '@authsec/core';
import type { Storage, TenantRecord } from '@authsec/core/postgres';
import type { TOO_LARGE } from './input.js';
import type { Output } from './output.js';

/**
 * The shape of every `authsec` command. One table of {@link CommandEntry} values (commands/index.ts) drives
 * argument parsing, help and dispatch: adding a command or a command group is one entry there.
 */

/** A flag of one command, in the terms of `node:util` `parseArgs` plus what help and validation need. */
export interface FlagSpec {
  /** `string` takes a value, `boolean` does not. */
  readonly type: 'string' | 'boolean';
  /** May be repeated (`--role a --role b`); the handler receives every value. Default `false`. */
  readonly multiple?: boolean;
  /** Placeholder for the value in help, e.g. `tenant` gives `--tenant <tenant>`. Default `value`. */
  readonly value?: string;
  /** One line for help. */
  readonly description: string;
  /** The command cannot run without it (a usage error, exit 2). Default `false`. */
  readonly required?: boolean;
  /** The only accepted values (a usage error otherwise). */
  readonly choices?: readonly string[];
  /** The value is a tenant id: checked before anything else runs (a usage error, exit 2). */
  readonly tenant?: boolean;
}

/** A positional argument. Every declared argument is required, in order. */
export interface ArgSpec {
  /** Name used in help (`<tenant>`) and as the key in {@link CommandContext.args}. */
  readonly name: string;
  /** One line for help. */
  readonly description: string;
  /** The value is a tenant id: checked before anything else runs (a usage error, exit 2). */
  readonly tenant?: boolean;
}

/** One runnable command, e.g. `tenant create` (inside a group) or `migrate` (at the top level). */
export interface CommandSpec {
  /** Its word: `create`, or `migrate` for a top-level command. */
  readonly name: string;
  /** One line for help. */
  readonly summary: string;
  /** Positional arguments, all required. */
  readonly args?: readonly ArgSpec[];
  /** Flags besides `--json` and `--help`, which every command takes. */
  readonly flags?: Readonly<Record<string, FlagSpec>>;
  /** More help text, printed under the usage line. */
  readonly details?: readonly string[];
  /**
   * Set for commands that read a secret value from stdin: an unexpected argument may be that value typed in
   * the wrong place, so it is never repeated in the message, and this reminder (e.g. "values are read from
   * stdin or --from-file") is added to unknown-flag and unexpected-argument errors.
   */
  readonly secretInput?: string;
  /** Does the work. Returns the exit code (`undefined` = 0); throws for failures. */
  run(ctx: CommandContext): Promise<number | undefined>;
}

/** A word that groups commands, e.g. `tenant` for `tenant create|list|disable|enable`. */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly commands: readonly CommandSpec[];
}

/** An entry of the command table: a top-level command or a group of them. */
export type CommandEntry = CommandSpec | CommandGroup;

/** True when `entry` is a group. */
export function isGroup(entry: CommandEntry): entry is CommandGroup {
  return 'commands' in entry;
}

/** What one admin change (or one revealing read) records in the tenant's audit log. */
export interface AdminChange {
  /** Default `admin.change`; `service.read` for `service get --reveal`. */
  readonly action?: Extract<AuditAction, 'admin.change' | 'service.read'>;
  /** The tenant concerned. */
  readonly tenantId: string;
  /** What was done, e.g. `role add admin`: names only, never a secret value. */
  readonly target: string;
  /** When the change started (ms), for the event's latency. */
  readonly startedAt: number;
}

/** Everything a command handler gets. */
export interface CommandContext {
  /** The full command, e.g. `role add`. */
  readonly command: string;
  /** Positional arguments by name, validated. */
  readonly args: Readonly<Record<string, string>>;
  /** A string flag's value (the last one when repeated). */
  string(name: string): string | undefined;
  /** Every value of a repeatable flag, in order. */
  strings(name: string): readonly string[];
  /** A boolean flag. */
  boolean(name: string): boolean;
  /** `--json` was given. */
  readonly json: boolean;
  /** Where results go. */
  readonly out: Output;
  /**
   * For commands that run until stopped (`audit tail --follow`): from this call on, Ctrl-C, the end of stdin
   * or the caller's abort signal make the returned signal abort, and that is the command's normal end (exit
   * 0). Any other command that is stopped is interrupted (exit 130).
   */
  untilStopped(): AbortSignal;
  /** Opens the database on first call (same instance afterwards); closed by the runner. */
  storage(): Promise<Storage>;
  /** The master key ring the storage was opened with. */
  masterKey(): Promise<MasterKeyRing>;
  /** The trusted issuers `AUTHSEC_ISSUER` lists, in order; empty when it is not set. */
  issuers(): readonly string[];
  /** The tenant's registry row; `tenant '<id>' does not exist` (exit 1) when there is none. */
  requireTenant(tenantId: string): Promise<TenantRecord>;
  /** Records a successful admin change in the tenant's audit log and waits until it is written. */
  recordChange(change: AdminChange): Promise<void>;
  /**
   * The service-credential store, opened on first call (same instance afterwards) and closed by the runner:
   * HashiCorp Vault when `AUTHSEC_VAULT_ADDR` is set, otherwise the encrypted store in the tenant databases.
   */
  secrets(): Promise<SecretBackend>;
  /** Where {@link CommandContext.secrets} keeps values, for messages: `Vault` or `the encrypted PostgreSQL store`. */
  secretsWhere(): string;
  /** True when stdin is a terminal (a person typing). */
  readonly stdinIsTTY: boolean;
  /**
   * Reads stdin to its end: its bytes, `TOO_LARGE` past `maxBytes` (the rest unread), or `undefined` when the
   * command has no stdin. Ctrl-C while waiting interrupts the command (exit 130).
   */
  readStdin(maxBytes: number): Promise<Buffer | typeof TOO_LARGE | undefined>;
}
