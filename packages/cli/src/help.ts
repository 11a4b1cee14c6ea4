import { type CommandEntry, type CommandSpec, type FlagSpec, isGroup } from './command.js';
import { formatTable } from './output.js';
import { COMMON_FLAGS } from './parse.js';

function flagValue(f: FlagSpec): string {
  return f.choices ? f.choices.join('|') : `<${f.value ?? 'value'}>`;
}

function flagUsage(name: string, f: FlagSpec): string {
  const text = f.type === 'boolean' ? `--${name}` : `--${name} ${flagValue(f)}`;
  if (f.required) return text;
  return f.multiple ? `[${text}]...` : `[${text}]`;
}

/** The usage line of one command, e.g. `authsec tenant create <tenant> [--placement schema|database] [--json]`. */
export function usageLine(path: string, spec: CommandSpec): string {
  const parts = ['authsec', path, ...(spec.args ?? []).map((a) => `<${a.name}>`)];
  for (const [name, f] of Object.entries(spec.flags ?? {})) parts.push(flagUsage(name, f));
  parts.push('[--json]');
  return parts.join(' ');
}

function leaves(table: readonly CommandEntry[]): { path: string; spec: CommandSpec }[] {
  return table.flatMap((entry) =>
    isGroup(entry)
      ? entry.commands.map((spec) => ({ path: `${entry.name} ${spec.name}`, spec }))
      : [{ path: entry.name, spec: entry }],
  );
}

/** Help for the whole `authsec` command. */
export function topHelp(table: readonly CommandEntry[], version: string): string {
  const rows = leaves(table).map(({ path, spec }) => [`  ${path}`, spec.summary]);
  return [
    `authsec ${version}: administer AuthSec tenants, catalogs, grants, audit logs and service credentials`,
    '',
    'Usage: authsec <command> [arguments] [flags]',
    '',
    'Commands:',
    ...formatTable(['', ''], rows).slice(1),
    '  help [command]',
    '',
    "Run 'authsec help <command>' (or add --help) for a command's arguments and flags.",
    'Every command takes --json: one JSON document on stdout; errors as {"error":{"code","message"}} on stderr.',
    '',
    'Environment:',
    '  AUTHSEC_DATABASE_URL  PostgreSQL URL; absent: the embedded database in the data folder',
    '  AUTHSEC_DATA_DIR      data folder (embedded database, development master key)',
    '  AUTHSEC_MASTER_KEY    the key ring the servers use (audit chain, service credentials); required when NODE_ENV=production',
    '  AUTHSEC_VAULT_ADDR    HashiCorp Vault for service credentials (with AUTHSEC_VAULT_TOKEN or an AppRole); absent: the database',
    '  AUTHSEC_ISSUER        the trusted issuer(s), comma-separated: the default --issuer of grant, revoke, check and migrate',
    '  AUTHSEC_LOG_LEVEL     debug, info, warn (default for this command), error or silent',
    '',
    'Exit codes: 0 done, 1 failed (including a failed audit verify), 2 usage, 130 interrupted.',
    '',
  ].join('\n');
}

/** Help for a group: its commands with their usage lines. */
export function groupHelp(entry: CommandEntry & { commands: readonly CommandSpec[] }): string {
  return [
    `authsec ${entry.name}: ${entry.summary}`,
    '',
    'Usage:',
    ...entry.commands.map((spec) => `  ${usageLine(`${entry.name} ${spec.name}`, spec)}`),
    '',
    ...formatTable(
      ['', ''],
      entry.commands.map((spec) => [`  ${spec.name}`, spec.summary]),
    ).slice(1),
    '',
    `Run 'authsec help ${entry.name} <command>' for a command's flags.`,
    '',
  ].join('\n');
}

/** Help for one command: usage, details, arguments and flags. */
export function commandHelp(path: string, spec: CommandSpec): string {
  const args = (spec.args ?? []).map((a) => [`  <${a.name}>`, a.description]);
  const flags = Object.entries({ ...(spec.flags ?? {}), ...COMMON_FLAGS }).map(([name, f]) => {
    const label =
      name === 'help' ? '-h, --help' : f.type === 'boolean' ? `--${name}` : `--${name} ${flagValue(f)}`;
    const notes = [f.required ? 'required' : '', f.multiple ? 'repeatable' : ''].filter(Boolean);
    return [`  ${label}`, `${f.description}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`];
  });
  return [
    `Usage: ${usageLine(path, spec)}`,
    '',
    spec.summary,
    ...(spec.details && spec.details.length > 0 ? ['', ...spec.details] : []),
    ...(args.length > 0 ? ['', 'Arguments:', ...formatTable(['', ''], args).slice(1)] : []),
    '',
    'Flags:',
    ...formatTable(['', ''], flags).slice(1),
    '',
  ].join('\n');
}
