import { createHash } from 'node:crypto';
import { AuthSecError } from '../errors.js';
import { hasUnsafeDisplayChars } from '../identifiers.js';
import { silentLogger } from '../logger.js';
import { compileRequirement } from '../policy/index.js';
import type { Requirement } from '../types.js';
import { isValidTenantId } from '../types.js';
import type { ServiceSecretInput, ServiceSecretSummary, StoredServiceSecret } from './types.js';

/**
 * Checks shared by every secret backend: tenant ids, service names and what may be stored, validated before
 * anything is named or sent. Messages name the field at fault and never a value.
 */

/** Longest service name, in characters. */
export const MAX_SERVICE_NAME_LENGTH = 128;
/** Most credential entries of one service. */
export const MAX_CREDENTIALS = 32;
/** Longest credential value, in characters. */
export const MAX_CREDENTIAL_LENGTH = 16_384;
/** Most metadata entries of one service. */
export const MAX_METADATA = 32;
/** Longest metadata value, in characters. */
export const MAX_METADATA_LENGTH = 512;

const CREDENTIAL_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const METADATA_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
const CONTROL = /[\u0000-\u001f\u007f]/;

function bad(message: string): never {
  throw new AuthSecError('BAD_REQUEST', message);
}

/** Refuses a malformed tenant id (`BAD_REQUEST`) before it can name a schema or a path. */
export function checkTenantId(tenantId: unknown): string {
  if (!isValidTenantId(tenantId)) {
    bad(
      'Invalid tenant id: lowercase letters, digits and -, starting with a letter or digit, at most 55 characters',
    );
  }
  return tenantId;
}

/**
 * Refuses a malformed service name (`BAD_REQUEST`): 1 to 128 characters, no control characters, trimmed. The
 * rule for naming an existing service (read, rotate, delete); a new one must also pass
 * {@link checkNewServiceName}.
 */
export function checkServiceName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_SERVICE_NAME_LENGTH) {
    bad(`Invalid service name: 1 to ${MAX_SERVICE_NAME_LENGTH} characters`);
  }
  if (CONTROL.test(name)) bad('Invalid service name: control characters are not allowed');
  if (name.trim() !== name) bad('Invalid service name: no leading or trailing spaces');
  return name;
}

/**
 * The rule for a service name that is being stored (`BAD_REQUEST`): {@link checkServiceName}, and no character
 * that disguises it on display (control, bidirectional-control or zero-width: see `hasUnsafeDisplayChars`), so
 * that `authsec service list` shows what callers will name. Names stored before this rule can still be read,
 * rotated and deleted.
 */
export function checkNewServiceName(name: unknown): string {
  const checked = checkServiceName(name);
  if (hasUnsafeDisplayChars(checked)) {
    bad('Invalid service name: bidirectional-control and zero-width characters are not allowed');
  }
  return checked;
}

function checkText(field: string, value: unknown, max: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max || CONTROL.test(value)) {
    bad(`Invalid ${field}: 1 to ${max} characters without control characters`);
  }
  return value;
}

function checkUrl(value: unknown): string | undefined {
  const url = checkText('url', value, 2048);
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return bad('Invalid url: not an absolute URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') bad('Invalid url: http(s) only');
  if (parsed.username || parsed.password)
    bad('Invalid url: credentials belong in the credentials, not the URL');
  return url;
}

/** Refuses malformed credentials (`BAD_REQUEST`); returns a frozen copy with sorted keys. */
export function checkCredentials(credentials: unknown): Readonly<Record<string, string>> {
  if (typeof credentials !== 'object' || credentials === null || Array.isArray(credentials)) {
    bad('Invalid credentials: an object of strings is required');
  }
  const entries = Object.entries(credentials as Record<string, unknown>);
  if (entries.length === 0) bad('Invalid credentials: at least one value is required');
  if (entries.length > MAX_CREDENTIALS) bad(`Invalid credentials: at most ${MAX_CREDENTIALS} values`);
  const out: Record<string, string> = {};
  for (const [key, value] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!CREDENTIAL_KEY.test(key)) bad('Invalid credentials: keys are [A-Za-z0-9_.-]{1,64}');
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CREDENTIAL_LENGTH) {
      bad(
        `Invalid credentials: the value of '${key}' must be a string of 1 to ${MAX_CREDENTIAL_LENGTH} characters`,
      );
    }
    out[key] = value;
  }
  return Object.freeze(out);
}

/** Refuses malformed metadata (`BAD_REQUEST`); returns a frozen copy with sorted keys. */
export function checkMetadata(metadata: unknown): Readonly<Record<string, string>> {
  if (metadata === undefined || metadata === null) return Object.freeze({});
  if (typeof metadata !== 'object' || Array.isArray(metadata)) bad('Invalid metadata: an object of strings');
  const entries = Object.entries(metadata as Record<string, unknown>);
  if (entries.length > MAX_METADATA) bad(`Invalid metadata: at most ${MAX_METADATA} entries`);
  const out: Record<string, string> = {};
  for (const [key, value] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!METADATA_KEY.test(key)) bad('Invalid metadata: keys are [A-Za-z0-9_.-]{1,64}');
    if (typeof value !== 'string' || value.length > MAX_METADATA_LENGTH) {
      bad(
        `Invalid metadata: the value of '${key}' must be a string of at most ${MAX_METADATA_LENGTH} characters`,
      );
    }
    out[key] = value;
  }
  return Object.freeze(out);
}

/** Refuses a requirement the policy engine would not compile (`BAD_REQUEST`); returns a plain JSON copy. */
export function checkRequirement(requirement: unknown): Requirement | undefined {
  if (requirement === undefined || requirement === null) return undefined;
  try {
    compileRequirement(requirement as Requirement, { logger: silentLogger });
  } catch (cause) {
    throw new AuthSecError('BAD_REQUEST', `Invalid requirement: ${(cause as Error).message}`);
  }
  return deepFreeze(JSON.parse(JSON.stringify(requirement)) as Requirement);
}

/** A validated {@link ServiceSecretInput}. */
export interface CheckedInput {
  readonly name: string;
  readonly serviceType: string | undefined;
  readonly authType: string | undefined;
  readonly url: string | undefined;
  readonly credentials: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly requirement: Requirement | undefined;
}

/** Validates everything a backend stores (`BAD_REQUEST` naming the field at fault). */
export function checkInput(input: ServiceSecretInput): CheckedInput {
  if (typeof input !== 'object' || input === null) bad('A service object is required');
  return {
    name: checkNewServiceName(input.name),
    serviceType: checkText('serviceType', input.serviceType, 64),
    authType: checkText('authType', input.authType, 64),
    url: checkUrl(input.url),
    credentials: checkCredentials(input.credentials),
    metadata: checkMetadata(input.metadata),
    requirement: checkRequirement(input.requirement),
  };
}

/** Freezes `value` and everything it holds. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A frozen {@link StoredServiceSecret}. */
export function storedSecret(
  fields: Omit<CheckedInput, 'credentials'> & { credentials: Readonly<Record<string, string>> },
  version: number,
  updatedAt: number,
): StoredServiceSecret {
  return Object.freeze({
    name: fields.name,
    serviceType: fields.serviceType,
    authType: fields.authType,
    url: fields.url,
    credentials: Object.freeze({ ...fields.credentials }),
    metadata: Object.freeze({ ...fields.metadata }),
    requirement: fields.requirement,
    version,
    updatedAt,
  });
}

/** A frozen {@link ServiceSecretSummary}. */
export function secretSummary(
  fields: Omit<CheckedInput, 'credentials'>,
  keys: readonly string[],
  version: number,
  updatedAt: number,
): ServiceSecretSummary {
  return Object.freeze({
    name: fields.name,
    serviceType: fields.serviceType,
    authType: fields.authType,
    url: fields.url,
    metadata: Object.freeze({ ...fields.metadata }),
    requirement: fields.requirement,
    version,
    updatedAt,
    keys: Object.freeze([...keys].sort()),
  });
}

/** Refuses a negative or non-finite grace period (`BAD_REQUEST`). */
export function checkGraceMs(graceMs: unknown): number {
  if (graceMs === undefined) return 0;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0 || graceMs > 366 * 86_400_000) {
    bad('Invalid graceMs: a number of milliseconds from 0 to one year');
  }
  return Math.floor(graceMs);
}

/** Refuses a version that is not a positive integer (`BAD_REQUEST`). */
export function checkVersion(version: unknown): number | undefined {
  if (version === undefined) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    bad('Invalid version: a positive integer is required');
  }
  return version;
}

/**
 * The path segment of a service name: lowercase letters, digits and `-` ("GitHub API Integration" →
 * `github-api-integration`). Two names may share a slug; backends that name things by slug keep the exact name
 * beside it and refuse the second one.
 */
export function serviceSlug(name: string): string {
  const slug = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 100)
    .replace(/-+$/g, '');
  // A name without a single ASCII letter or digit still needs a stable, distinct segment.
  return slug || `s-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 16)}`;
}

/** JSON with object keys sorted at every level, so equal values always give equal text (for AAD). */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}
