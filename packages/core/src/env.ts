import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuthSecError } from './errors.js';
import type { ClaimPreset, IssuerOptions } from './options.js';
import { isValidTenantId } from './types.js';

/**
 * The `AUTHSEC_*` configuration contract shared by every sample app (architecture.md), read once at start.
 * Unknown `AUTHSEC_*` names and contradictory values are errors that name the variable (and, for a typo, the
 * nearest real name). Secret values may come from `<NAME>_FILE` instead of `<NAME>`.
 */

/** Every variable of the contract, with what it means. Listed here so typos can be caught and suggested. */
export const AUTHSEC_ENV_VARIABLES = {
  AUTHSEC_ISSUER: 'Trusted token issuer URL(s), comma-separated. Absent: apps start the embedded dev IdP.',
  AUTHSEC_JWKS_URL: 'JWKS URL of the (single) issuer. Default: from the issuer metadata.',
  AUTHSEC_RESOURCE_URL: 'Canonical URL of this MCP server: the audience tokens must carry.',
  AUTHSEC_CLIENT_ID: 'OAuth client id for the tool-based login flow.',
  AUTHSEC_CLIENT_SECRET: 'OAuth client secret for the tool-based login flow (or AUTHSEC_CLIENT_SECRET_FILE).',
  AUTHSEC_DATABASE_URL: 'PostgreSQL URL. Absent: embedded PGlite in the data folder.',
  AUTHSEC_VAULT_ADDR: 'HashiCorp Vault address. Absent: the encrypted PostgreSQL secret store.',
  AUTHSEC_VAULT_TOKEN: 'Vault token (or AUTHSEC_VAULT_TOKEN_FILE, or AppRole).',
  AUTHSEC_VAULT_NAMESPACE: 'Vault Enterprise namespace.',
  AUTHSEC_VAULT_MOUNT: 'KV v2 mount. Default: secret.',
  AUTHSEC_VAULT_ROLE_ID: 'AppRole role id (with AUTHSEC_VAULT_SECRET_ID).',
  AUTHSEC_VAULT_SECRET_ID: 'AppRole secret id.',
  AUTHSEC_MASTER_KEY: 'Base64 32-byte key, or a key ring kid:key,... whose first key is active.',
  AUTHSEC_DATA_DIR: 'Data folder. Default: the user data folder, not the working directory.',
  AUTHSEC_DEFAULT_TENANT: 'Tenant for tokens without a tenant claim. Absent: such tokens are refused.',
  AUTHSEC_REMEMBER_LOGIN: 'Remember a stdio login for the local OS user (true/false). Default true.',
  AUTHSEC_ACCESS_TOKEN:
    'stdio: an access token for this server, used instead of the oauth_* login and verified like any token.',
  AUTHSEC_ACCESS_TOKEN_FILE:
    'stdio: a file holding that access token (read again when it changes; a warning when group or world can read it).',
  AUTHSEC_SEED: 'Seed the demo tenant into an empty database (true/false). Default true.',
  AUTHSEC_CLAIMS_PRESET: 'Claim mapping preset: generic, keycloak, auth0, entra, okta. Default generic.',
  AUTHSEC_ALGORITHMS: 'Accepted JWS algorithms, comma-separated. Default: asymmetric only.',
  AUTHSEC_TOKEN_TYPE: 'Required JWT typ header, e.g. at+jwt. Default: not checked.',
  AUTHSEC_CLOCK_TOLERANCE: 'Clock skew allowed, seconds (0-300). Default 30.',
  AUTHSEC_MAX_TOKEN_LIFETIME:
    'Longest token validity (exp - iat) accepted: seconds, or a duration such as 90m, 24h, 7d (60 s to 365 d). Default 24h.',
  AUTHSEC_LOG_LEVEL: 'debug, info, warn, error or silent. Default info.',
  AUTHSEC_AUDIT_CHECKPOINT_FILE:
    'File the signed audit checkpoints are appended to (keep it off the database host), or "off". Default: audit-checkpoints.jsonl in the data folder.',
  AUTHSEC_DEV_IDP_PORT: 'Port of the embedded development IdP (no AUTHSEC_ISSUER). Default 4780.',
  AUTHSEC_NEST_PLATFORM:
    'The NestJS sample app only: the Nest HTTP platform, express or fastify. Default express. Other apps ignore it.',
} as const;

/** A name of the contract. */
export type AuthSecEnvName = keyof typeof AUTHSEC_ENV_VARIABLES;

const FILE_ALLOWED = new Set<string>([
  'AUTHSEC_CLIENT_SECRET',
  'AUTHSEC_DATABASE_URL',
  'AUTHSEC_VAULT_TOKEN',
  'AUTHSEC_VAULT_SECRET_ID',
  'AUTHSEC_MASTER_KEY',
]);

/** A parsed master key ring. The first key is the active one; the others still decrypt. */
export interface MasterKeyRing {
  /** Id of the key new data is encrypted with. */
  readonly activeKid: string;
  /** Every key by id (32 bytes each). */
  readonly keys: ReadonlyMap<string, Uint8Array>;
}

/** What {@link authSecOptionsFromEnv} returns: engine options (when an issuer is set) and deployment settings. */
export interface AuthSecEnvOptions {
  /** Trusted issuers; empty when `AUTHSEC_ISSUER` is absent (apps then start the embedded dev IdP). */
  readonly issuers: readonly IssuerOptions[];
  /** `AUTHSEC_RESOURCE_URL`, the accepted audience. */
  readonly audience: string | undefined;
  readonly algorithms: readonly string[] | undefined;
  readonly requiredTokenType: string | undefined;
  readonly clockToleranceSeconds: number | undefined;
  /** `AUTHSEC_MAX_TOKEN_LIFETIME` in seconds, for `maxTokenLifetimeSeconds`; `undefined`: the engine default (24 h). */
  readonly maxTokenLifetimeSeconds: number | undefined;
  readonly defaultTenant: string | undefined;
  readonly clientId: string | undefined;
  readonly clientSecret: string | undefined;
  /**
   * `AUTHSEC_DATABASE_URL`. The engine opens no database: `createAuthSec` refuses (a `TypeError`) options that
   * carry this without a `directory`. `openStorageFromEnv` (`@authsec/core/postgres`) opens it and returns
   * engine options that validate claims against it.
   */
  readonly databaseUrl: string | undefined;
  readonly vault:
    | {
        readonly addr: string;
        readonly token: string | undefined;
        readonly namespace: string | undefined;
        readonly mount: string;
        readonly roleId: string | undefined;
        readonly secretId: string | undefined;
      }
    | undefined;
  readonly masterKey: MasterKeyRing | undefined;
  readonly dataDir: string;
  /**
   * Where the PostgreSQL audit sink appends its signed checkpoints (`AUTHSEC_AUDIT_CHECKPOINT_FILE`), so that a
   * shortened or emptied audit log is detected (`authsec audit verify --checkpoint`); `undefined` when `off`.
   */
  readonly auditCheckpointFile: string | undefined;
  readonly rememberLogin: boolean;
  /**
   * stdio credentials from the environment: `AUTHSEC_ACCESS_TOKEN` (the token) or `AUTHSEC_ACCESS_TOKEN_FILE`
   * (a path; the stdio entry reads it, checks its mode and reads it again when it changes). At most one is set.
   */
  readonly accessToken:
    | { readonly variable: 'AUTHSEC_ACCESS_TOKEN'; readonly token: string }
    | { readonly variable: 'AUTHSEC_ACCESS_TOKEN_FILE'; readonly file: string }
    | undefined;
  readonly seed: boolean;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Port of the embedded development IdP. Default 4780. */
  readonly devIdpPort: number;
  /** `PORT`, when set. */
  readonly port: number | undefined;
  /** `HOST`. Default `127.0.0.1`. */
  readonly host: string;
}

/** Levenshtein edit distance between two strings (for "did you mean" suggestions). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The real variable name nearest to `name`, for "did you mean" messages. */
export function nearestEnvName(name: string): string {
  let best = '';
  let bestScore = Number.POSITIVE_INFINITY;
  for (const known of Object.keys(AUTHSEC_ENV_VARIABLES)) {
    const score = editDistance(name, known);
    if (score < bestScore) {
      best = known;
      bestScore = score;
    }
  }
  return best;
}

function fail(message: string): never {
  throw new AuthSecError('CONFIG_INVALID', message);
}

/** Decodes `AUTHSEC_MASTER_KEY`: one base64 32-byte key, or `kid:key,kid:key` (first active). */
export function parseMasterKey(value: string, variable = 'AUTHSEC_MASTER_KEY'): MasterKeyRing {
  const keys = new Map<string, Uint8Array>();
  let activeKid: string | undefined;
  for (const [index, part] of value.split(',').entries()) {
    const item = part.trim();
    const colon = item.indexOf(':');
    const kid = colon > 0 ? item.slice(0, colon) : 'default';
    const encoded = colon > 0 ? item.slice(colon + 1) : item;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(kid))
      fail(`${variable}: key id #${index + 1} is not [A-Za-z0-9._-]{1,64}`);
    if (keys.has(kid)) fail(`${variable}: key id '${kid}' appears twice`);
    const bytes = Buffer.from(encoded, 'base64');
    if (bytes.length !== 32 || bytes.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) {
      fail(`${variable}: key '${kid}' must be 32 bytes in base64 (got ${bytes.length} bytes)`);
    }
    keys.set(kid, new Uint8Array(bytes));
    activeKid ??= kid;
  }
  if (!activeKid) fail(`${variable}: no key given`);
  return { activeKid, keys };
}

function parseBoolean(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return fail(`${name}: expected true or false, got '${value}'`);
}

function parseUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(`${name}: not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`${name}: must be an http(s) URL`);
  return value;
}

/** The platform's per-user data folder for AuthSec. MCP clients often start servers with cwd `/`. */
export function defaultDataDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const home = env.HOME || homedir();
  if (process.platform === 'win32')
    return join(env.LOCALAPPDATA || join(home, 'AppData', 'Local'), 'authsec');
  if (process.platform === 'darwin') return join(home, 'Library', 'Application Support', 'authsec');
  return join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'authsec');
}

const DURATION = /^(\d{1,9})([smhd]?)$/i;
const DURATION_UNIT_SECONDS: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

// Whole seconds, or a whole number of minutes, hours or days: `86400`, `90m`, `24h`, `7d`.
function parseLifetime(name: string, value: string): number {
  const match = DURATION.exec(value);
  const seconds = match ? Number(match[1]) * DURATION_UNIT_SECONDS[match[2]!.toLowerCase()]! : Number.NaN;
  if (!(seconds >= 60 && seconds <= 31_536_000)) {
    fail(
      `${name}: expected whole seconds or a duration such as 90m, 24h or 7d, from 60 s to 365 d, got '${value}'`,
    );
  }
  return seconds;
}

const PRESETS: readonly ClaimPreset[] = ['generic', 'keycloak', 'auth0', 'entra', 'okta'];
const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/**
 * Reads the `AUTHSEC_*` contract from `env` (default `process.env`). Throws `CONFIG_INVALID` naming the
 * variable at fault; unknown `AUTHSEC_*` names are refused with the nearest real name suggested.
 */
export function authSecOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): AuthSecEnvOptions {
  for (const name of Object.keys(env)) {
    if (!name.startsWith('AUTHSEC_') || env[name] === undefined) continue;
    if (name in AUTHSEC_ENV_VARIABLES) continue;
    if (name.endsWith('_FILE') && FILE_ALLOWED.has(name.slice(0, -5))) continue;
    // Test-only variables of this repository; not part of the contract but not typos either.
    if (name === 'AUTHSEC_TEST_COUNTS_FILE') continue;
    fail(`${name}: unknown variable; did you mean ${nearestEnvName(name)}?`);
  }
  const read = (name: AuthSecEnvName): string | undefined => {
    const direct = env[name];
    const file = FILE_ALLOWED.has(name) ? env[`${name}_FILE`] : undefined;
    if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
      fail(`${name} and ${name}_FILE are both set; set only one`);
    }
    if (file) {
      try {
        return readFileSync(file, 'utf8').trim();
      } catch (cause) {
        throw new AuthSecError('CONFIG_INVALID', `${name}_FILE: cannot read the file`, { cause });
      }
    }
    return direct === '' ? undefined : direct?.trim();
  };

  const issuerList = (read('AUTHSEC_ISSUER') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseUrl('AUTHSEC_ISSUER', s));
  const jwksUrl = read('AUTHSEC_JWKS_URL');
  if (jwksUrl && issuerList.length === 0) fail('AUTHSEC_JWKS_URL is set but AUTHSEC_ISSUER is not');
  if (jwksUrl && issuerList.length > 1)
    fail('AUTHSEC_JWKS_URL names one key set but AUTHSEC_ISSUER lists several issuers');
  const presetValue = read('AUTHSEC_CLAIMS_PRESET');
  if (presetValue !== undefined && !PRESETS.includes(presetValue as ClaimPreset)) {
    fail(`AUTHSEC_CLAIMS_PRESET: expected one of ${PRESETS.join(', ')}, got '${presetValue}'`);
  }
  const issuers: IssuerOptions[] = issuerList.map((issuer) => ({
    issuer,
    ...(jwksUrl ? { jwksUrl: parseUrl('AUTHSEC_JWKS_URL', jwksUrl) } : {}),
    ...(presetValue ? { claims: presetValue as ClaimPreset } : {}),
  }));

  const audience = read('AUTHSEC_RESOURCE_URL');
  if (audience !== undefined) parseUrlOrUrn('AUTHSEC_RESOURCE_URL', audience);

  const clientId = read('AUTHSEC_CLIENT_ID');
  const clientSecret = read('AUTHSEC_CLIENT_SECRET');
  if (clientSecret && !clientId) fail('AUTHSEC_CLIENT_SECRET is set but AUTHSEC_CLIENT_ID is not');

  const defaultTenant = read('AUTHSEC_DEFAULT_TENANT');
  if (defaultTenant !== undefined && !isValidTenantId(defaultTenant)) {
    fail('AUTHSEC_DEFAULT_TENANT: must match ^[a-z0-9][a-z0-9-]{0,54}$');
  }

  const databaseUrl = read('AUTHSEC_DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    fail('AUTHSEC_DATABASE_URL: must start with postgres:// or postgresql://');
  }

  const vaultAddr = read('AUTHSEC_VAULT_ADDR');
  const vaultToken = read('AUTHSEC_VAULT_TOKEN');
  const roleId = read('AUTHSEC_VAULT_ROLE_ID');
  const secretId = read('AUTHSEC_VAULT_SECRET_ID');
  const namespace = read('AUTHSEC_VAULT_NAMESPACE');
  const mount = read('AUTHSEC_VAULT_MOUNT');
  if (!vaultAddr && (vaultToken || roleId || secretId || namespace || mount)) {
    fail('AUTHSEC_VAULT_* settings are set but AUTHSEC_VAULT_ADDR is not');
  }
  if (vaultAddr && !vaultToken && !(roleId && secretId)) {
    fail(
      'AUTHSEC_VAULT_ADDR is set but neither AUTHSEC_VAULT_TOKEN nor AUTHSEC_VAULT_ROLE_ID + AUTHSEC_VAULT_SECRET_ID is',
    );
  }
  if (Boolean(roleId) !== Boolean(secretId))
    fail('AUTHSEC_VAULT_ROLE_ID and AUTHSEC_VAULT_SECRET_ID go together');
  if (mount !== undefined && !/^[A-Za-z0-9_-][A-Za-z0-9_/-]*$/.test(mount))
    fail('AUTHSEC_VAULT_MOUNT: invalid mount path');

  const masterKeyValue = read('AUTHSEC_MASTER_KEY');
  const algorithmsValue = read('AUTHSEC_ALGORITHMS');
  const toleranceValue = read('AUTHSEC_CLOCK_TOLERANCE');
  let clockToleranceSeconds: number | undefined;
  if (toleranceValue !== undefined) {
    clockToleranceSeconds = Number(toleranceValue);
    if (
      !Number.isInteger(clockToleranceSeconds) ||
      clockToleranceSeconds < 0 ||
      clockToleranceSeconds > 300
    ) {
      fail(`AUTHSEC_CLOCK_TOLERANCE: expected whole seconds from 0 to 300, got '${toleranceValue}'`);
    }
  }
  const lifetimeValue = read('AUTHSEC_MAX_TOKEN_LIFETIME');
  const maxTokenLifetimeSeconds =
    lifetimeValue === undefined ? undefined : parseLifetime('AUTHSEC_MAX_TOKEN_LIFETIME', lifetimeValue);
  const logLevel = read('AUTHSEC_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    fail(`AUTHSEC_LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  }
  const devPortValue = read('AUTHSEC_DEV_IDP_PORT');
  let devIdpPort = 4780;
  if (devPortValue !== undefined) {
    devIdpPort = Number(devPortValue);
    if (!Number.isInteger(devIdpPort) || devIdpPort < 0 || devIdpPort > 65535) {
      fail(`AUTHSEC_DEV_IDP_PORT: expected 0-65535, got '${devPortValue}'`);
    }
  }
  const dataDir = read('AUTHSEC_DATA_DIR') ?? defaultDataDir(env);
  const checkpointValue = read('AUTHSEC_AUDIT_CHECKPOINT_FILE');
  const auditCheckpointFile =
    checkpointValue === 'off' ? undefined : (checkpointValue ?? join(dataDir, 'audit-checkpoints.jsonl'));
  const portValue = env.PORT;
  let port: number | undefined;
  if (portValue !== undefined && portValue !== '') {
    port = Number(portValue);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      fail(`PORT: expected 0-65535, got '${portValue}'`);
  }

  const accessTokenValue = read('AUTHSEC_ACCESS_TOKEN');
  const accessTokenFile = read('AUTHSEC_ACCESS_TOKEN_FILE');
  if (accessTokenValue !== undefined && accessTokenFile !== undefined)
    fail('AUTHSEC_ACCESS_TOKEN and AUTHSEC_ACCESS_TOKEN_FILE are both set; set only one');
  const accessToken: AuthSecEnvOptions['accessToken'] =
    accessTokenValue !== undefined
      ? { variable: 'AUTHSEC_ACCESS_TOKEN', token: accessTokenValue }
      : accessTokenFile !== undefined
        ? { variable: 'AUTHSEC_ACCESS_TOKEN_FILE', file: accessTokenFile }
        : undefined;

  return {
    issuers,
    audience,
    algorithms: algorithmsValue
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    requiredTokenType: read('AUTHSEC_TOKEN_TYPE'),
    clockToleranceSeconds,
    maxTokenLifetimeSeconds,
    defaultTenant,
    clientId,
    clientSecret,
    databaseUrl,
    vault: vaultAddr
      ? {
          addr: parseUrl('AUTHSEC_VAULT_ADDR', vaultAddr),
          token: vaultToken,
          namespace,
          mount: mount ?? 'secret',
          roleId,
          secretId,
        }
      : undefined,
    masterKey: masterKeyValue ? parseMasterKey(masterKeyValue) : undefined,
    dataDir,
    auditCheckpointFile,
    rememberLogin: parseBoolean('AUTHSEC_REMEMBER_LOGIN', read('AUTHSEC_REMEMBER_LOGIN'), true),
    accessToken,
    seed: parseBoolean('AUTHSEC_SEED', read('AUTHSEC_SEED'), true),
    logLevel: logLevel as AuthSecEnvOptions['logLevel'],
    devIdpPort,
    port,
    host: env.HOST?.trim() || '127.0.0.1',
  };
}

// For stdio servers the audience is a stable identifier rather than a URL (architecture.md), so a URN is
// accepted too.
function parseUrlOrUrn(name: string, value: string): void {
  if (value.startsWith('urn:')) {
    if (!/^urn:[a-z0-9][a-z0-9-]{0,31}:\S+$/i.test(value)) fail(`${name}: not a valid URN`);
    return;
  }
  const url = parseUrl(name, value);
  const parsed = new URL(url);
  if (parsed.hash) fail(`${name}: the canonical resource URL must not have a fragment`);
}
