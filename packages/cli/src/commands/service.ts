import { open } from 'node:fs/promises';
import {
  compileRequirement,
  isAuthSecError,
  type Logger,
  type Requirement,
  type StoredServiceSecret,
} from '@authsec/core';
import type { CommandContext, CommandGroup, CommandSpec, FlagSpec } from '../command.js';
import { CommandFailure, UsageError } from '../errors.js';
import { TOO_LARGE } from '../input.js';
import { jsonErrorPosition, parseJsonFlag } from '../json.js';
import { cell, formatTable, hasControlCharacters } from '../output.js';
import { quoted } from '../parse.js';
import { tenantFlag } from './catalog.js';

/** The most that stdin or `--from-file` may hold: one value, or the JSON object of every value. */
export const MAX_INPUT_BYTES = 64 * 1024;
/** The credential key a single value is stored under unless `--key` names another. */
export const DEFAULT_KEY = 'access_token';
/** Values shorter than this are masked whole; longer ones show their first 4 characters. */
const MASK_PREFIX_FROM = 20;
const MAX_NAME = 128;
const MAX_GRACE_MS = 30 * 86_400_000;
const KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const SECRET_INPUT = 'values are read from stdin or --from-file, never from an argument';

const nameArg = {
  name: 'name',
  description: 'Service name, e.g. "GitHub API Integration" (quote it): 1 to 128 characters',
};

const fromFileFlag: FlagSpec = {
  type: 'string',
  value: 'file',
  description: `Read the value from this file instead of stdin (at most ${MAX_INPUT_BYTES / 1024} KiB)`,
};
const keyFlag: FlagSpec = {
  type: 'string',
  value: 'key',
  description: `Credential key the value is stored under. Default ${DEFAULT_KEY}`,
};
const jsonInputFlag: FlagSpec = {
  type: 'boolean',
  description:
    'The input is a JSON object of credential keys and values, e.g. {"client_id":"..","client_secret":".."}',
};

/** `<name>` checked: 1 to 128 characters, no control characters, no leading or trailing white space. */
function readName(ctx: CommandContext): string {
  const name = ctx.args.name!;
  if (name.length === 0 || name.length > MAX_NAME || hasControlCharacters(name) || name.trim() !== name) {
    throw new UsageError(
      `<name>: invalid service name ${quoted(name)}: 1 to ${MAX_NAME} characters, no control characters, no leading or trailing spaces`,
      ctx.command,
    );
  }
  return name;
}

function readText(ctx: CommandContext, flag: string, max = 64): string | undefined {
  const value = ctx.string(flag);
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > max || hasControlCharacters(value)) {
    throw new UsageError(
      `--${flag}: expected 1 to ${max} characters without control characters, got ${quoted(value)}`,
      ctx.command,
    );
  }
  return value;
}

function readUrl(ctx: CommandContext): string | undefined {
  const text = ctx.string('url');
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url: not a valid URL: ${quoted(text)}`, ctx.command);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`--url: expected an http:// or https:// URL, got ${quoted(text)}`, ctx.command);
  }
  // Credentials in the URL would be an argument (shell history, process list) and would show in every list.
  if (url.username !== '' || url.password !== '') {
    throw new UsageError(`--url: must not hold credentials (user:password@); ${SECRET_INPUT}`, ctx.command);
  }
  return text;
}

function readMetadata(ctx: CommandContext): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const item of ctx.strings('metadata')) {
    const at = item.indexOf('=');
    const key = at < 0 ? item : item.slice(0, at);
    const value = at < 0 ? '' : item.slice(at + 1);
    if (at < 0 || !KEY.test(key)) {
      throw new UsageError(
        `--metadata: expected key=value with a key of letters, digits, '_', '.' or '-', got ${quoted(item)}`,
        ctx.command,
      );
    }
    if (value.length > 512 || hasControlCharacters(value)) {
      throw new UsageError(
        `--metadata: the value of '${key}' must be at most 512 characters, without control characters`,
        ctx.command,
      );
    }
    if (Object.hasOwn(metadata, key)) {
      throw new UsageError(`--metadata: '${key}' is given twice`, ctx.command);
    }
    metadata[key] = value;
  }
  return metadata;
}

function readRequirement(ctx: CommandContext): Requirement | undefined {
  const text = ctx.string('requirement');
  if (text === undefined) return undefined;
  const value = parseJsonFlag('requirement', text, ctx.command);
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (message) => warnings.push(message),
    error: (message) => warnings.push(message),
  };
  try {
    compileRequirement(value as Requirement, { logger });
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`--requirement: ${error.message}`, ctx.command);
    throw error;
  }
  for (const warning of warnings) ctx.out.note(`--requirement: ${warning}`);
  return value as Requirement;
}

const GRACE_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** `--grace` in ms: a whole number with a unit (`10m`, `3600s`, `1h`, `500ms`, `1d`), or `0`. Default 0. */
export function parseGrace(text: string | undefined, command: string): number {
  if (text === undefined) return 0;
  const match = /^(\d{1,10})(ms|s|m|h|d)?$/.exec(text);
  const unit = match?.[2];
  if (!match || (unit === undefined && Number(match[1]) !== 0)) {
    throw new UsageError(
      `--grace: expected a duration such as 10m, 3600s, 1h or 0, got ${quoted(text)}`,
      command,
    );
  }
  const ms = Number(match[1]) * (GRACE_UNITS[unit ?? 's'] ?? 1000);
  if (ms > MAX_GRACE_MS) throw new UsageError(`--grace: at most 30d, got ${quoted(text)}`, command);
  return ms;
}

function readVersion(ctx: CommandContext): number | undefined {
  const text = ctx.string('version');
  if (text === undefined) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(text)) {
    throw new UsageError(
      `--version: expected a version number (1, 2, ...), got ${quoted(text)}`,
      ctx.command,
    );
  }
  return Number(text);
}

/** `--key` (default access_token) for a single value, or `undefined` with `--json-input`. */
function readKey(ctx: CommandContext): string | undefined {
  const key = ctx.string('key');
  if (ctx.boolean('json-input')) {
    if (key !== undefined) {
      throw new UsageError(
        '--key cannot be used with --json-input: the JSON object names its keys',
        ctx.command,
      );
    }
    return undefined;
  }
  if (key !== undefined && !KEY.test(key)) {
    throw new UsageError(
      `--key: expected 1 to 64 letters, digits, '_', '.' or '-', got ${quoted(key)}`,
      ctx.command,
    );
  }
  return key ?? DEFAULT_KEY;
}

async function readFileBounded(path: string, command: string): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`--from-file: cannot read ${quoted(path)} (${String(code ?? error)})`, command);
  }
  // Read up to one byte past the limit, without trusting the size of what may be a pipe (<(...), /dev/stdin).
  const buffer = Buffer.alloc(MAX_INPUT_BYTES + 1);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, size, buffer.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size === buffer.length) break;
    }
  } catch (error) {
    buffer.fill(0);
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`--from-file: cannot read ${quoted(path)} (${String(code ?? error)})`, command);
  } finally {
    await handle.close();
  }
  if (size > MAX_INPUT_BYTES) {
    buffer.fill(0);
    throw new UsageError(`--from-file: value too large (more than ${MAX_INPUT_BYTES} bytes)`, command);
  }
  const bytes = Buffer.from(buffer.subarray(0, size));
  buffer.fill(0);
  return bytes;
}

/**
 * The credentials given on stdin or in `--from-file`: the whole input, trimmed, as the value of `key`; or,
 * with `key` undefined (`--json-input`), a JSON object of keys and string values. No message ever holds a
 * value: a mistake is named by its source (`stdin`, `--from-file`), key and position.
 */
async function readCredentials(
  ctx: CommandContext,
  key: string | undefined,
  service: string,
): Promise<Record<string, string>> {
  const file = ctx.string('from-file');
  const source = file === undefined ? 'stdin' : '--from-file';
  let bytes: Buffer;
  if (file !== undefined) {
    bytes = await readFileBounded(file, ctx.command);
  } else {
    if (ctx.stdinIsTTY) {
      ctx.out.note(
        `Type ${key ? `the value of '${key}'` : 'the JSON object of credentials'} for service '${service}', then Enter and Ctrl-D:`,
      );
    }
    const read = await ctx.readStdin(MAX_INPUT_BYTES);
    if (read === TOO_LARGE) {
      throw new UsageError(`stdin: value too large (more than ${MAX_INPUT_BYTES} bytes)`, ctx.command);
    }
    bytes = read ?? Buffer.alloc(0);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${source}: not valid UTF-8`, ctx.command);
  } finally {
    bytes.fill(0);
  }
  const empty = () =>
    new UsageError(
      file === undefined
        ? `stdin: no value: pipe the value in, or use --from-file (${SECRET_INPUT})`
        : `--from-file: ${quoted(file)} is empty`,
      ctx.command,
    );

  if (key !== undefined) {
    const value = text.trim();
    if (value === '') throw empty();
    return { [key]: value };
  }

  if (text.trim() === '') throw empty();
  const shape = 'a JSON object of credential keys and string values, e.g. {"access_token":"..."}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The position only: the character there may be part of a secret.
    const at = jsonErrorPosition(text);
    throw new UsageError(
      `${source}: not valid JSON${at === undefined ? '' : ` at position ${at}`}; --json-input expects ${shape}`,
      ctx.command,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${source}: --json-input expects ${shape}`, ctx.command);
  }
  const credentials: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!KEY.test(k)) {
      throw new UsageError(
        `${source}: invalid credential key ${quoted(k)}: 1 to 64 letters, digits, '_', '.' or '-'`,
        ctx.command,
      );
    }
    if (typeof v !== 'string' || v.trim() === '') {
      throw new UsageError(`${source}: the value of '${k}' must be a non-empty string`, ctx.command);
    }
    credentials[k] = v;
  }
  if (Object.keys(credentials).length === 0) {
    throw new UsageError(
      `${source}: the JSON object holds no credentials; --json-input expects ${shape}`,
      ctx.command,
    );
  }
  return credentials;
}

/** A value as `get` shows it without `--reveal`: its first 4 characters and its length, or `********`. */
export function mask(value: string): string {
  const chars = [...value];
  if (chars.length < MASK_PREFIX_FROM) return '********';
  return `${chars.slice(0, 4).join('')}… (${chars.length} characters)`;
}

function notFound(name: string, tenantId: string, version?: number): CommandFailure {
  return new CommandFailure(
    'NOT_FOUND',
    version === undefined
      ? `service '${name}' does not exist in tenant '${tenantId}'`
      : `version ${version} of service '${name}' in tenant '${tenantId}' does not exist or is past its rotation grace period`,
  );
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function metadataText(metadata: Readonly<Record<string, string>>): string {
  return cell(Object.entries(metadata).map(([k, v]) => `${k}=${v}`));
}

const set: CommandSpec = {
  name: 'set',
  summary: "Store a service's credentials for a tenant (a new version); the value comes from stdin or a file",
  details: [
    'The value is read from stdin to its end (trimmed) or from --from-file, never from an argument, so it stays',
    `out of shell history and process listings. It is stored as the credential --key (default ${DEFAULT_KEY});`,
    'with --json-input the input is a JSON object of several credential keys and values.',
    'Set on a service that exists replaces it (a new version, the flags as given now); rotate changes only values.',
    `Values are kept in Vault when AUTHSEC_VAULT_ADDR is set, otherwise encrypted in the tenant's database.`,
    'Example: printf %s "$GITHUB_TOKEN" | authsec service set "GitHub API Integration" --tenant acme-corp \\',
    '           --type github --auth-type bearer --url https://api.github.com',
  ],
  secretInput: SECRET_INPUT,
  args: [nameArg],
  flags: {
    tenant: tenantFlag,
    type: { type: 'string', value: 'type', description: 'Kind of service, e.g. github' },
    'auth-type': {
      type: 'string',
      value: 'auth',
      description: 'How the credential is presented, e.g. bearer',
    },
    url: {
      type: 'string',
      value: 'url',
      description: "The service's API base URL, e.g. https://api.github.com",
    },
    key: keyFlag,
    'json-input': jsonInputFlag,
    'from-file': fromFileFlag,
    metadata: {
      type: 'string',
      value: 'key=value',
      multiple: true,
      description: 'Non-secret metadata (shown by get and list)',
    },
    requirement: {
      type: 'string',
      value: 'json',
      description:
        'Who may read it, as a tool requirement, e.g. {"roles":["admin"]}. Default: any caller of the tenant',
    },
  },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const name = readName(ctx);
    const serviceType = readText(ctx, 'type');
    const authType = readText(ctx, 'auth-type');
    const url = readUrl(ctx);
    const metadata = readMetadata(ctx);
    const requirement = readRequirement(ctx);
    const key = readKey(ctx);
    // The tenant is checked before the value is read: nobody types a secret for a tenant that does not exist.
    await ctx.requireTenant(tenantId);
    const backend = await ctx.secrets();
    const credentials = await readCredentials(ctx, key, name);
    const stored = await backend.write(tenantId, {
      name,
      credentials,
      metadata,
      ...(serviceType !== undefined ? { serviceType } : {}),
      ...(authType !== undefined ? { authType } : {}),
      ...(url !== undefined ? { url } : {}),
      ...(requirement !== undefined ? { requirement } : {}),
    });
    const keys = Object.keys(stored.credentials);
    await ctx.recordChange({
      tenantId,
      target: `service set ${name} (version ${stored.version}; keys ${keys.join(',')})`,
      startedAt,
    });
    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        name,
        backend: backend.kind,
        version: stored.version,
        keys,
        changed: true,
      });
    } else {
      ctx.out.line(
        `Stored service '${name}' for tenant '${tenantId}' in ${ctx.secretsWhere()}: version ${stored.version}, keys ${keys.join(', ')}`,
      );
    }
    return 0;
  },
};

function shownFields(stored: StoredServiceSecret, reveal: boolean) {
  const credentials = Object.fromEntries(
    Object.entries(stored.credentials).map(([k, v]) => [k, reveal ? v : mask(v)]),
  );
  return {
    serviceType: stored.serviceType ?? null,
    authType: stored.authType ?? null,
    url: stored.url ?? null,
    metadata: stored.metadata,
    requirement: stored.requirement ?? null,
    version: stored.version,
    updatedAt: iso(stored.updatedAt),
    keys: Object.keys(stored.credentials),
    credentials,
  };
}

const get: CommandSpec = {
  name: 'get',
  summary: "Show a service's settings and its values, masked unless --reveal",
  details: [
    `Values are shown as their first 4 characters and their length (or ******** under ${MASK_PREFIX_FROM} characters).`,
    "--reveal prints them in full and records a service.read event in the tenant's audit log (never the value).",
    '--version reads an earlier version while its rotation grace period lasts.',
  ],
  args: [nameArg],
  flags: {
    tenant: tenantFlag,
    reveal: { type: 'boolean', description: 'Print the values in full (recorded in the audit log)' },
    version: {
      type: 'string',
      value: 'n',
      description: 'An earlier version, readable during its rotation grace period. Default: the current one',
    },
  },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const name = readName(ctx);
    const version = readVersion(ctx);
    const reveal = ctx.boolean('reveal');
    await ctx.requireTenant(tenantId);
    const backend = await ctx.secrets();
    const stored = await backend.read(tenantId, name, version === undefined ? undefined : { version });
    if (!stored) throw notFound(name, tenantId, version);
    if (reveal) {
      // Recorded before anything is printed: a value is never shown without its audit event.
      await ctx.recordChange({
        action: 'service.read',
        tenantId,
        target: `service get ${name} --reveal (version ${stored.version})`,
        startedAt,
      });
    }
    const shown = shownFields(stored, reveal);
    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        name: stored.name,
        backend: backend.kind,
        ...shown,
        revealed: reveal,
      });
      return 0;
    }
    ctx.out.line(`Service '${stored.name}' in tenant '${tenantId}' (${ctx.secretsWhere()})`);
    const rows: [string, string][] = [
      ['version', `${stored.version} (updated ${shown.updatedAt})`],
      ['type', stored.serviceType ?? '-'],
      ['auth type', stored.authType ?? '-'],
      ['url', stored.url ?? '-'],
      ['metadata', metadataText(stored.metadata)],
      [
        'requirement',
        stored.requirement ? JSON.stringify(stored.requirement) : '- (any caller of the tenant)',
      ],
    ];
    for (const line of formatTable(['', ''], rows).slice(1)) ctx.out.line(line);
    ctx.out.line();
    ctx.out.table(
      ['KEY', reveal ? 'VALUE' : 'VALUE (masked; --reveal to show)'],
      Object.entries(shown.credentials),
    );
    return 0;
  },
};

const list: CommandSpec = {
  name: 'list',
  summary: 'List the services of a tenant: names, type, url, keys and version, never values',
  flags: { tenant: tenantFlag },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    await ctx.requireTenant(tenantId);
    const backend = await ctx.secrets();
    const services = await backend.list(tenantId);
    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        backend: backend.kind,
        services: services.map((s) => ({
          name: s.name,
          serviceType: s.serviceType ?? null,
          authType: s.authType ?? null,
          url: s.url ?? null,
          keys: s.keys,
          metadata: s.metadata,
          requirement: s.requirement ?? null,
          version: s.version,
          updatedAt: iso(s.updatedAt),
        })),
      });
    } else if (services.length === 0) {
      ctx.out.line(`No services in tenant '${tenantId}' (${ctx.secretsWhere()}).`);
    } else {
      ctx.out.table(
        ['NAME', 'TYPE', 'AUTH', 'URL', 'KEYS', 'VERSION', 'UPDATED'],
        services.map((s) => [
          s.name,
          s.serviceType ?? '-',
          s.authType ?? '-',
          s.url ?? '-',
          cell(s.keys),
          String(s.version),
          iso(s.updatedAt),
        ]),
      );
    }
    return 0;
  },
};

const rotate: CommandSpec = {
  name: 'rotate',
  summary: "Replace a service's value (a new version); the previous one stays readable for --grace",
  details: [
    `The new value is read like set's: stdin or --from-file, stored as --key (default ${DEFAULT_KEY}); the other`,
    'keys keep their values. With --json-input the object replaces every value. Type, url, metadata and',
    'requirement are kept. During --grace (e.g. 10m, 3600s, 1h; default 0) get --version <previous> still reads',
    'the previous version, for callers that have not picked up the new one.',
    'Example: authsec service rotate "GitHub API Integration" --tenant acme-corp --grace 10m < new-token.txt',
  ],
  secretInput: SECRET_INPUT,
  args: [nameArg],
  flags: {
    tenant: tenantFlag,
    grace: {
      type: 'string',
      value: 'duration',
      description: 'How long the previous version stays readable: 10m, 3600s, 1h, 0 (at most 30d). Default 0',
    },
    key: keyFlag,
    'json-input': jsonInputFlag,
    'from-file': fromFileFlag,
  },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const name = readName(ctx);
    const graceText = ctx.string('grace') ?? '0';
    const graceMs = parseGrace(graceText, ctx.command);
    const key = readKey(ctx);
    await ctx.requireTenant(tenantId);
    const backend = await ctx.secrets();
    // Checked before the value is read: nobody types a secret for a service that does not exist.
    const current = await backend.read(tenantId, name);
    if (!current) throw notFound(name, tenantId);
    if (key !== undefined && !Object.hasOwn(current.credentials, key)) {
      throw new UsageError(
        `--key: service '${name}' has no key '${key}' (its keys: ${Object.keys(current.credentials).join(', ')}); name one of them, or give --json-input to replace every value`,
        ctx.command,
      );
    }
    const given = await readCredentials(ctx, key, name);
    const credentials = key === undefined ? given : { ...current.credentials, ...given };
    let stored: StoredServiceSecret;
    try {
      stored = await backend.rotate(tenantId, name, credentials, { graceMs });
    } catch (error) {
      if (isAuthSecError(error) && error.code === 'NOT_FOUND') throw notFound(name, tenantId);
      throw error;
    }
    const previousVersion = current.version;
    const readableUntil = graceMs > 0 ? iso(Date.now() + graceMs) : null;
    await ctx.recordChange({
      tenantId,
      target: `service rotate ${name} (version ${stored.version}; grace ${graceText})`,
      startedAt,
    });
    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        name,
        backend: backend.kind,
        version: stored.version,
        previousVersion,
        graceMs,
        previousReadableUntil: readableUntil,
        keys: Object.keys(stored.credentials),
      });
    } else {
      ctx.out.line(`Rotated service '${name}' in tenant '${tenantId}': version ${stored.version}`);
      ctx.out.line(
        readableUntil
          ? `Version ${previousVersion} stays readable (get --version ${previousVersion}) until ${readableUntil}`
          : `Version ${previousVersion} is no longer readable`,
      );
    }
    return 0;
  },
};

const remove: CommandSpec = {
  name: 'delete',
  summary: 'Delete a service and every version of its values',
  details: ['Deleting a service that does not exist changes nothing (exit 0).'],
  args: [nameArg],
  flags: { tenant: tenantFlag },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const name = readName(ctx);
    await ctx.requireTenant(tenantId);
    const backend = await ctx.secrets();
    const deleted = await backend.delete(tenantId, name);
    if (deleted) await ctx.recordChange({ tenantId, target: `service delete ${name}`, startedAt });
    if (ctx.json) ctx.out.json({ tenant: tenantId, name, backend: backend.kind, deleted });
    else
      ctx.out.line(
        deleted
          ? `Deleted service '${name}' from tenant '${tenantId}'`
          : `service '${name}' was not in tenant '${tenantId}'`,
      );
    return 0;
  },
};

/** `authsec service set|get|list|rotate|delete`: a tenant's service credentials. */
export const service: CommandGroup = {
  name: 'service',
  summary: "Store, show, list, rotate and delete a tenant's service credentials",
  commands: [set, get, list, rotate, remove],
};
