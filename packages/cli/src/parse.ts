import { parseArgs } from 'node:util';
import { isValidTenantId } from '@authsec/core';
import { type CommandEntry, type CommandGroup, type CommandSpec, type FlagSpec, isGroup } from './command.js';
import { UsageError } from './errors.js';
import { didYouMean, nearest } from './suggest.js';

/** Flags every command takes. */
export const COMMON_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  json: { type: 'boolean', description: 'Machine-readable JSON on stdout (errors as JSON on stderr)' },
  help: { type: 'boolean', description: 'Show this help' },
});

/** The parsed values of a command's flags. */
export type FlagValues = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** What the command line asks for. */
export type Invocation =
  | { readonly kind: 'version' }
  /** Help for the whole command, a group or one command; `error` when it was asked for by mistake. */
  | {
      readonly kind: 'help';
      readonly entry: CommandEntry | undefined;
      readonly command: CommandSpec | undefined;
      readonly error?: UsageError;
    }
  | {
      readonly kind: 'command';
      /** Full name, e.g. `role add`. */
      readonly name: string;
      readonly spec: CommandSpec;
      readonly args: Readonly<Record<string, string>>;
      readonly flags: FlagValues;
      readonly json: boolean;
    };

/** The tenant-id rule, said once for every message that refuses an id. */
export const TENANT_RULE =
  "lowercase letters, digits and '-', starting with a letter or digit, at most 55 characters";

/** A bounded, quoted rendering of an untrusted value for messages. */
export function quoted(value: string, max = 60): string {
  return value.length > max
    ? `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`
    : JSON.stringify(value);
}

/** Throws a usage error naming `what` unless `value` is a well-formed tenant id. */
export function checkTenantId(value: string, what: string, command?: string): string {
  if (!isValidTenantId(value)) {
    throw new UsageError(`${what}: invalid tenant id ${quoted(value)}: ${TENANT_RULE}`, command);
  }
  return value;
}

function flagName(message: string): string | undefined {
  return /'(-{1,2}[^' ]+)/.exec(message)?.[1];
}

const GLOBAL_LEADING = new Set(['--json', '--help', '-h', '--version', '-V']);

function findEntry(table: readonly CommandEntry[], word: string): CommandEntry {
  const entry = table.find((e) => e.name === word);
  if (entry) return entry;
  throw new UsageError(
    `unknown command '${word}'${didYouMean(
      word,
      table.map((e) => e.name),
    )}`,
  );
}

/**
 * The command of `group` that the words name, and how many words its name took: a command's name may be two
 * words (`tenant issuer add`), which share their first word with their siblings (`issuer add|remove|list`).
 */
function findCommand(group: CommandGroup, word: string, next?: string): { spec: CommandSpec; words: number } {
  if (next !== undefined && !next.startsWith('-')) {
    const two = group.commands.find((c) => c.name === `${word} ${next}`);
    if (two) return { spec: two, words: 2 };
  }
  const spec = group.commands.find((c) => c.name === word);
  if (spec) return { spec, words: 1 };
  const siblings = group.commands
    .filter((c) => c.name.startsWith(`${word} `))
    .map((c) => c.name.slice(word.length + 1));
  if (siblings.length > 0) {
    const path = `${group.name} ${word}`;
    if (next === undefined || next.startsWith('-')) {
      throw new UsageError(`'${path}' needs a command: ${siblings.join(', ')}`, group.name);
    }
    throw new UsageError(`unknown ${path} command '${next}'${didYouMean(next, siblings)}`, group.name);
  }
  throw new UsageError(
    `unknown ${group.name} command '${word}'${didYouMean(
      word,
      group.commands.map((c) => c.name),
    )}`,
    group.name,
  );
}

function subcommandRequired(group: CommandGroup): UsageError {
  return new UsageError(
    `'${group.name}' needs a command: ${group.commands.map((c) => c.name).join(', ')}`,
    group.name,
  );
}

/** Resolves the words after `help` to what help should show. */
function parseHelp(table: readonly CommandEntry[], words: readonly string[]): Invocation {
  const [first, second, third] = words;
  if (first === undefined) return { kind: 'help', entry: undefined, command: undefined };
  const entry = findEntry(table, first);
  if (!isGroup(entry)) return { kind: 'help', entry, command: entry };
  if (second === undefined) return { kind: 'help', entry, command: undefined };
  return { kind: 'help', entry, command: findCommand(entry, second, third).spec };
}

/**
 * Parses `argv` (without the node and script paths) against the command table. Throws {@link UsageError} for
 * anything wrong with the command line, naming the command, flag or argument at fault. Checks that need no
 * database (tenant ids, choices, required flags) happen here, so nothing is opened for a bad command line.
 */
export function parseInvocation(argv: readonly string[], table: readonly CommandEntry[]): Invocation {
  let i = 0;
  let help = false;
  let version = false;
  while (i < argv.length && GLOBAL_LEADING.has(argv[i]!)) {
    const word = argv[i++]!;
    if (word === '--help' || word === '-h') help = true;
    if (word === '--version' || word === '-V') version = true;
  }
  const word = argv[i];
  if (word === undefined) {
    if (version) return { kind: 'version' };
    if (help) return { kind: 'help', entry: undefined, command: undefined };
    return {
      kind: 'help',
      entry: undefined,
      command: undefined,
      error: new UsageError('a command is required'),
    };
  }
  if (word.startsWith('-')) {
    throw new UsageError(`unknown flag ${word} before the command; flags go after the command`);
  }
  if (word === 'help') {
    return parseHelp(
      table,
      argv.slice(i + 1).filter((w) => !w.startsWith('-')),
    );
  }
  const entry = findEntry(table, word);
  i++;
  let spec: CommandSpec;
  let name: string;
  if (isGroup(entry)) {
    const sub = argv[i];
    if (sub === undefined || sub.startsWith('-')) {
      if (help || sub === '--help' || sub === '-h') return { kind: 'help', entry, command: undefined };
      throw subcommandRequired(entry);
    }
    const found = findCommand(entry, sub, argv[i + 1]);
    spec = found.spec;
    name = `${entry.name} ${spec.name}`;
    i += found.words;
  } else {
    spec = entry;
    name = entry.name;
  }

  const flagSpecs: Record<string, FlagSpec> = { ...(spec.flags ?? {}), ...COMMON_FLAGS };
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [flag, f] of Object.entries(flagSpecs)) {
    options[flag] = { type: f.type, ...(f.multiple ? { multiple: true } : {}) };
  }
  options.help = { type: 'boolean', short: 'h' };

  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv.slice(i), options, allowPositionals: true, strict: true });
  } catch (error) {
    throw parseError(error, name, Object.keys(flagSpecs), spec.secretInput);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const json = values.json === true;
  if (help || values.help === true) return { kind: 'help', entry, command: spec };

  const declared = spec.args ?? [];
  const positionals = parsed.positionals;
  const args: Record<string, string> = {};
  for (const [index, arg] of declared.entries()) {
    const value = positionals[index];
    if (value === undefined) throw new UsageError(`<${arg.name}> is required`, name);
    args[arg.name] = arg.tenant ? checkTenantId(value, `<${arg.name}>`, name) : value;
  }
  const extra = positionals[declared.length];
  if (extra !== undefined) {
    // It may be a secret typed in the wrong place: do not repeat it.
    if (spec.secretInput) throw new UsageError(`unexpected argument; ${spec.secretInput}`, name);
    throw new UsageError(`unexpected argument ${quoted(extra)}`, name);
  }

  for (const [flag, f] of Object.entries(spec.flags ?? {})) {
    const value = values[flag];
    if (value === undefined) {
      if (f.required) throw new UsageError(`--${flag} is required`, name);
      continue;
    }
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v !== 'string') continue;
      if (f.choices && !f.choices.includes(v)) {
        throw new UsageError(
          `--${flag}: ${quoted(v)} is not one of ${f.choices.map((c) => `'${c}'`).join(', ')}`,
          name,
        );
      }
      if (f.tenant) checkTenantId(v, `--${flag}`, name);
    }
  }
  return { kind: 'command', name, spec, args, flags: values, json };
}

function parseError(
  error: unknown,
  command: string,
  known: readonly string[],
  secretInput: string | undefined,
): UsageError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const flag = flagName(message);
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const bare = flag?.replace(/^-+/, '').split('=')[0] ?? '';
      // For a command that reads a secret from stdin, an unknown flag is most likely an attempt to pass it.
      const hint =
        secretInput && nearest(bare, known) === undefined
          ? `; ${secretInput}`
          : didYouMean(bare, known, (s) => `--${s}`);
      return new UsageError(`unknown flag ${flag ?? message} for '${command}'${hint}`, command);
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const bare = flag?.split(' ')[0];
      if (/does not take an argument/.test(message)) {
        return new UsageError(`${bare} takes no value`, command);
      }
      return new UsageError(
        `${bare ?? 'a flag'} needs a value${/ambiguous/.test(message) ? ` (write ${bare}=<value> for a value starting with '-')` : ''}`,
        command,
      );
    }
    default:
      return new UsageError(message, command);
  }
}
