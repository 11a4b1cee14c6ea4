import type { JWK } from 'jose';
import { AuthSecError } from '../errors.js';
import { hasUnsafeDisplayChars } from '../identifiers.js';
import type { AuthSecOptions, IssuerOptions } from '../options.js';
import { type Clock, isValidTenantId, type Logger } from '../types.js';
import { type CompiledClaimMapping, compileClaimMapping } from './claims.js';
import { DEFAULT_MAX_TOKEN_LIFETIME_SECONDS } from './lifetime.js';
import { fetchUrlProblem, isHttpUrl } from './url-policy.js';

/** Algorithms accepted when none are configured: asymmetric only. */
export const DEFAULT_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]);

const ASYMMETRIC_ALGORITHMS = new Set([...DEFAULT_ALGORITHMS, 'Ed25519']);

// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
const SYMMETRIC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };

/** Where an issuer's verification keys come from. */
export type ResolvedKeySource =
  /** Public keys given in the options. */
  | { readonly kind: 'local'; readonly keys: readonly JWK[] }
  /** A shared HMAC secret (HS256/384/512 only). */
  | { readonly kind: 'secret'; readonly secret: Uint8Array }
  /** A remote JWKS at `jwksUrl`, or discovered from the issuer's metadata when `undefined`. */
  | { readonly kind: 'remote'; readonly jwksUrl: string | undefined };

/** RFC 7662 introspection, ready to call. */
export interface ResolvedIntrospection {
  readonly endpoint: string;
  /** The complete `Authorization: Basic ...` value (RFC 6749 §2.3.1 encoding). */
  readonly authorization: string;
}

/** One trusted issuer, validated and defaulted. */
export interface ResolvedIssuer {
  /** The exact `iss` value. */
  readonly issuer: string;
  /** JWS algorithms accepted from this issuer; never `none`, symmetric ones only with a secret. */
  readonly algorithms: readonly string[];
  readonly keySource: ResolvedKeySource;
  readonly claims: CompiledClaimMapping;
  readonly introspection: ResolvedIntrospection | undefined;
  /** The tenant this issuer is bound to, if any. */
  readonly tenantId: string | undefined;
}

/** The token-related options, validated once and with every default applied. Frozen. */
export interface ResolvedTokenConfig {
  /** At least one; `issuer` values are unique. */
  readonly issuers: readonly ResolvedIssuer[];
  /** Accepted `aud` values; at least one. */
  readonly audience: readonly string[];
  /** Clock skew for `exp`/`nbf`/`iat`, seconds, 0..300. */
  readonly clockToleranceSeconds: number;
  /** Longest validity window accepted (`exp - iat`, and `exp - now`), seconds: 60 to one year, default 24 h. */
  readonly maxTokenLifetimeSeconds: number;
  /** Largest token accepted, bytes. */
  readonly maxTokenBytes: number;
  /** Required `typ` header (compared case-insensitively, `application/` prefix optional), or `undefined`. */
  readonly requiredTokenType: string | undefined;
  /** Tenant for tokens that name none, or `undefined` to refuse them. */
  readonly defaultTenant: string | undefined;
  /** Verified-token cache: on by default, 10,000 entries. */
  readonly cache: { readonly enabled: boolean; readonly maxEntries: number };
  /**
   * Limits for every outbound request (key sets, metadata, introspection): deadline and body size; and for
   * remote key sets, the least time between refetches for unknown `kid`s and the age that triggers a refresh.
   */
  readonly jwks: {
    readonly timeoutMs: number;
    readonly maxBytes: number;
    readonly cooldownMs: number;
    readonly maxAgeMs: number;
  };
  /** Milliseconds since the epoch; `Date.now` unless injected. */
  readonly clock: Clock;
  /** Used for every outbound request; the global `fetch` unless injected. */
  readonly fetch: typeof fetch;
}

function configError(path: string, message: string): never {
  throw new AuthSecError('CONFIG_INVALID', `${path}: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// A misspelt option (`jwksURL`) would otherwise be ignored silently and change behaviour (here: discovery).
function checkKnownKeys(value: Record<string, unknown>, known: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) configError(`${path}.${key}`, `unknown option (known: ${known.join(', ')})`);
  }
}

// `maxTokenLifetimeSeconds`: at most one year; above a week, a warning at start.
const MAX_TOKEN_LIFETIME_LIMIT_SECONDS = 365 * 86_400;
const LONG_TOKEN_LIFETIME_SECONDS = 7 * 86_400;

const ISSUER_KEYS = [
  'issuer',
  'jwksUrl',
  'keys',
  'secret',
  'algorithms',
  'claims',
  'introspection',
  'tenantId',
];

function integer(value: unknown, path: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    configError(path, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

function checkUrl(value: unknown, path: string): string {
  const problem = fetchUrlProblem(value);
  if (problem) configError(path, problem);
  return value as string;
}

function algorithmList(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || value.length === 0)
    configError(path, 'must be a non-empty array of JWS algorithms');
  return value.map((alg: unknown, index) => {
    if (typeof alg !== 'string') configError(`${path}[${index}]`, 'must be a string');
    if (alg.toLowerCase() === 'none')
      configError(`${path}[${index}]`, "'none' (unsigned tokens) is never accepted");
    if (!ASYMMETRIC_ALGORITHMS.has(alg) && !(alg in SYMMETRIC_MIN_BYTES)) {
      configError(`${path}[${index}]`, `unsupported algorithm '${alg}'`);
    }
    return alg;
  });
}

function secretBytes(value: unknown, path: string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === 'string') bytes = new TextEncoder().encode(value);
  else if (value instanceof Uint8Array) bytes = new Uint8Array(value);
  else configError(path, 'must be a string or a Uint8Array');
  if (bytes.byteLength < 32) configError(path, `must be at least 32 bytes (got ${bytes.byteLength})`);
  return bytes;
}

function publicKeys(value: unknown, path: string): readonly JWK[] {
  if (!Array.isArray(value) || value.length === 0)
    configError(path, 'must be a non-empty array of public JWKs');
  const kids = new Set<string>();
  const keys = value.map((key: unknown, index) => {
    const at = `${path}[${index}]`;
    if (!isRecord(key)) configError(at, 'must be a JWK object');
    if (key.kty !== 'RSA' && key.kty !== 'EC' && key.kty !== 'OKP') {
      configError(`${at}.kty`, "must be 'RSA', 'EC' or 'OKP' (symmetric keys belong in `secret`)");
    }
    if (key.d !== undefined || key.p !== undefined || key.priv !== undefined) {
      configError(at, 'is a private key; give the public key only');
    }
    if (value.length > 1) {
      if (typeof key.kid !== 'string' || key.kid === '')
        configError(`${at}.kid`, 'is required when there are several keys');
      if (kids.has(key.kid)) configError(`${at}.kid`, `duplicate kid '${key.kid}'`);
      kids.add(key.kid);
    }
    return Object.freeze(structuredClone(key)) as JWK;
  });
  return Object.freeze(keys);
}

// RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded.
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

function resolveIntrospection(value: unknown, path: string): ResolvedIntrospection | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) configError(path, 'must be an object with endpoint, clientId and clientSecret');
  checkKnownKeys(value, ['endpoint', 'clientId', 'clientSecret'], path);
  const endpoint = checkUrl(value.endpoint, `${path}.endpoint`);
  if (typeof value.clientId !== 'string' || value.clientId === '')
    configError(`${path}.clientId`, 'is required');
  if (typeof value.clientSecret !== 'string' || value.clientSecret === '') {
    configError(`${path}.clientSecret`, 'is required');
  }
  const credentials = `${formEncode(value.clientId)}:${formEncode(value.clientSecret)}`;
  return Object.freeze({ endpoint, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` });
}

function resolveIssuer(
  entry: unknown,
  path: string,
  globalAlgorithms: readonly string[] | undefined,
  logger: Logger,
): ResolvedIssuer {
  const options: IssuerOptions | undefined =
    typeof entry === 'string'
      ? { issuer: entry }
      : isRecord(entry)
        ? (entry as unknown as IssuerOptions)
        : undefined;
  if (options === undefined) configError(path, 'must be an issuer string or an issuer object');
  if (typeof entry !== 'string')
    checkKnownKeys(options as unknown as Record<string, unknown>, ISSUER_KEYS, path);
  const issuer: unknown = options.issuer;
  if (typeof issuer !== 'string' || issuer === '')
    configError(`${path}.issuer`, 'must be a non-empty string');
  // The issuer is shown in audit records and by the CLI: it must read as what it is.
  if (hasUnsafeDisplayChars(issuer)) {
    configError(`${path}.issuer`, 'must not hold control, bidirectional-control or zero-width characters');
  }
  const urlLike = isHttpUrl(issuer);
  if (urlLike) {
    const problem = fetchUrlProblem(issuer);
    if (problem) configError(`${path}.issuer`, problem);
  }

  const sources = ['jwksUrl', 'keys', 'secret'].filter(
    (k) => options[k as keyof IssuerOptions] !== undefined,
  );
  if (sources.length > 1)
    configError(path, `set only one of jwksUrl, keys and secret (got ${sources.join(', ')})`);

  let keySource: ResolvedKeySource;
  if (options.secret !== undefined) {
    keySource = { kind: 'secret', secret: secretBytes(options.secret, `${path}.secret`) };
  } else if (options.keys !== undefined) {
    keySource = { kind: 'local', keys: publicKeys(options.keys, `${path}.keys`) };
  } else if (options.jwksUrl !== undefined) {
    keySource = { kind: 'remote', jwksUrl: checkUrl(options.jwksUrl, `${path}.jwksUrl`) };
  } else {
    if (!urlLike) {
      configError(
        `${path}.issuer`,
        'is not an http(s) URL, so its keys cannot be discovered: set jwksUrl, keys or secret',
      );
    }
    keySource = { kind: 'remote', jwksUrl: undefined };
  }

  let algorithms: string[];
  if (options.algorithms !== undefined) {
    algorithms = algorithmList(options.algorithms, `${path}.algorithms`);
  } else if (keySource.kind === 'secret') {
    const symmetric = (globalAlgorithms ?? []).filter((alg) => alg in SYMMETRIC_MIN_BYTES);
    algorithms = symmetric.length > 0 ? symmetric : ['HS256'];
  } else {
    // Symmetric algorithms in the engine-wide list are meant for the issuers that have a secret.
    algorithms = (globalAlgorithms ?? DEFAULT_ALGORITHMS).filter((alg) => ASYMMETRIC_ALGORITHMS.has(alg));
    if (algorithms.length === 0)
      configError(`${path}.algorithms`, 'no asymmetric algorithm is allowed for this issuer');
  }
  const algorithmsPath = options.algorithms !== undefined ? `${path}.algorithms` : 'algorithms';
  for (const alg of algorithms) {
    const minBytes = SYMMETRIC_MIN_BYTES[alg];
    if (keySource.kind === 'secret') {
      if (minBytes === undefined)
        configError(algorithmsPath, `'${alg}' cannot be verified with a secret; use HS256/384/512`);
      if (keySource.secret.byteLength < minBytes)
        configError(`${path}.secret`, `${alg} needs at least ${minBytes} bytes`);
    } else if (minBytes !== undefined) {
      configError(algorithmsPath, `'${alg}' is symmetric and needs an explicit issuer secret`);
    }
  }
  if (keySource.kind === 'secret') {
    logger.warn(
      'Issuer verified with a shared secret: anyone able to verify its tokens can also forge them. Prefer asymmetric keys (jwksUrl or keys)',
      { option: `${path}.secret`, issuer },
    );
  }

  let tenantId: string | undefined;
  if (options.tenantId !== undefined) {
    if (!isValidTenantId(options.tenantId))
      configError(`${path}.tenantId`, 'must match ^[a-z0-9][a-z0-9-]{0,54}$');
    tenantId = options.tenantId;
  }

  return Object.freeze({
    issuer,
    algorithms: Object.freeze(algorithms),
    keySource: Object.freeze(keySource),
    claims: compileClaimMapping(options.claims, `${path}.claims`),
    introspection: resolveIntrospection(options.introspection, `${path}.introspection`),
    tenantId,
  });
}

/**
 * Validates the token-related options once, at start, and applies their defaults. Owns `issuers`, `audience`,
 * `algorithms`, `clockToleranceSeconds`, `maxTokenLifetimeSeconds`, `maxTokenBytes`, `requiredTokenType`,
 * `defaultTenant`, `cache`, `jwks`, `clock` and `fetch`.
 *
 * Throws `CONFIG_INVALID` with a message naming the option (`issuers[0].secret: ...`) for any bad value: no
 * issuer, no audience, `none` or an unknown algorithm, a symmetric algorithm without a secret, a secret under
 * 32 bytes, a private or symmetric JWK in `keys`, a URL that is not https (plain http only on loopback), a
 * clock tolerance above 300 s, a maximum token lifetime outside 60 s to one year, an invalid tenant id, several
 * issuers with introspection. Logs a warning for insecure choices that stay allowed (shared secrets, a clock
 * tolerance above 60 s, a maximum token lifetime above a week, a disabled cache, a very short refetch
 * cooldown).
 */
export function resolveTokenConfig(options: AuthSecOptions, logger: Logger): ResolvedTokenConfig {
  if (!isRecord(options)) configError('options', 'must be an object');
  const globalAlgorithms =
    options.algorithms === undefined ? undefined : algorithmList(options.algorithms, 'algorithms');

  if (!Array.isArray(options.issuers) || options.issuers.length === 0) {
    configError('issuers', 'at least one trusted issuer is required');
  }
  const issuers = options.issuers.map((entry, index) =>
    resolveIssuer(entry, `issuers[${index}]`, globalAlgorithms, logger),
  );
  const seen = new Set<string>();
  issuers.forEach((issuer, index) => {
    if (seen.has(issuer.issuer))
      configError(`issuers[${index}].issuer`, `duplicate issuer '${issuer.issuer}'`);
    seen.add(issuer.issuer);
  });
  if (
    globalAlgorithms?.some((alg) => alg in SYMMETRIC_MIN_BYTES) &&
    !issuers.some((i) => i.keySource.kind === 'secret')
  ) {
    configError('algorithms', 'symmetric algorithms (HS*) need an issuer with an explicit secret');
  }
  const introspecting = issuers.filter((issuer) => issuer.introspection !== undefined);
  if (introspecting.length > 1) {
    configError(
      `issuers[${issuers.indexOf(introspecting[1]!)}].introspection`,
      'only one issuer may use introspection: an opaque token does not say which issuer it came from',
    );
  }

  const audienceInput: unknown = options.audience;
  const audience = typeof audienceInput === 'string' ? [audienceInput] : audienceInput;
  if (
    !Array.isArray(audience) ||
    audience.length === 0 ||
    audience.some((a) => typeof a !== 'string' || a === '')
  ) {
    configError(
      'audience',
      'required: the canonical URL of this server (a non-empty string or array of strings)',
    );
  }

  const toleranceInput: unknown = options.clockToleranceSeconds;
  const clockToleranceSeconds = toleranceInput === undefined ? 30 : toleranceInput;
  if (typeof clockToleranceSeconds !== 'number' || !Number.isFinite(clockToleranceSeconds)) {
    configError('clockToleranceSeconds', 'must be a number of seconds from 0 to 300');
  }
  if (clockToleranceSeconds < 0 || clockToleranceSeconds > 300) {
    configError('clockToleranceSeconds', 'must be from 0 to 300 seconds');
  }
  if (clockToleranceSeconds > 60) {
    logger.warn(
      'Clock tolerance above 60 seconds keeps expired tokens usable for that long; synchronise clocks instead',
      {
        option: 'clockToleranceSeconds',
        value: clockToleranceSeconds,
      },
    );
  }

  const maxTokenLifetimeSeconds = integer(
    options.maxTokenLifetimeSeconds,
    'maxTokenLifetimeSeconds',
    DEFAULT_MAX_TOKEN_LIFETIME_SECONDS,
    60,
    MAX_TOKEN_LIFETIME_LIMIT_SECONDS,
  );
  if (maxTokenLifetimeSeconds > LONG_TOKEN_LIFETIME_SECONDS) {
    logger.warn(
      'Tokens valid for more than a week are accepted: a stolen one stays usable that long. Lower maxTokenLifetimeSeconds and have the issuer issue shorter-lived tokens',
      { option: 'maxTokenLifetimeSeconds', value: maxTokenLifetimeSeconds },
    );
  }

  const maxTokenBytes = integer(options.maxTokenBytes, 'maxTokenBytes', 8192, 256, 1_048_576);

  let requiredTokenType: string | undefined;
  if (options.requiredTokenType !== undefined) {
    if (typeof options.requiredTokenType !== 'string' || options.requiredTokenType.trim() === '') {
      configError('requiredTokenType', "must be a non-empty string such as 'at+jwt'");
    }
    requiredTokenType = options.requiredTokenType;
  }

  let defaultTenant: string | undefined;
  if (options.defaultTenant !== undefined) {
    if (!isValidTenantId(options.defaultTenant))
      configError('defaultTenant', 'must match ^[a-z0-9][a-z0-9-]{0,54}$');
    defaultTenant = options.defaultTenant;
  }

  const cacheInput: unknown = options.cache ?? {};
  if (!isRecord(cacheInput)) configError('cache', 'must be an object');
  checkKnownKeys(cacheInput, ['enabled', 'maxEntries'], 'cache');
  if (cacheInput.enabled !== undefined && typeof cacheInput.enabled !== 'boolean') {
    configError('cache.enabled', 'must be a boolean');
  }
  const cache = Object.freeze({
    enabled: cacheInput.enabled !== false,
    maxEntries: integer(cacheInput.maxEntries, 'cache.maxEntries', 10_000, 1, 10_000_000),
  });
  if (!cache.enabled) {
    logger.warn(
      'Verified-token cache disabled: every request pays for a signature check (and a key-set lookup)',
      {
        option: 'cache.enabled',
      },
    );
  }

  const jwksInput: unknown = options.jwks ?? {};
  if (!isRecord(jwksInput)) configError('jwks', 'must be an object');
  checkKnownKeys(jwksInput, ['timeoutMs', 'maxBytes', 'cooldownMs', 'maxAgeMs'], 'jwks');
  const jwks = Object.freeze({
    timeoutMs: integer(jwksInput.timeoutMs, 'jwks.timeoutMs', 5000, 1, 120_000),
    maxBytes: integer(jwksInput.maxBytes, 'jwks.maxBytes', 65_536, 1024, 16_777_216),
    cooldownMs: integer(jwksInput.cooldownMs, 'jwks.cooldownMs', 30_000, 0, 86_400_000),
    maxAgeMs: integer(jwksInput.maxAgeMs, 'jwks.maxAgeMs', 600_000, 1000, 604_800_000),
  });
  if (jwks.cooldownMs < 1000) {
    logger.warn(
      'jwks.cooldownMs under 1 s lets tokens with unknown key ids drive requests to the key-set server',
      {
        option: 'jwks.cooldownMs',
        value: jwks.cooldownMs,
      },
    );
  }

  if (options.clock !== undefined && typeof options.clock !== 'function')
    configError('clock', 'must be a function');
  if (options.fetch !== undefined && typeof options.fetch !== 'function')
    configError('fetch', 'must be a function');
  const userFetch = options.fetch;
  const fetchImpl: typeof fetch = userFetch ?? ((input, init) => globalThis.fetch(input, init));

  return Object.freeze({
    issuers: Object.freeze(issuers),
    audience: Object.freeze([...(audience as string[])]),
    clockToleranceSeconds,
    maxTokenLifetimeSeconds,
    maxTokenBytes,
    requiredTokenType,
    defaultTenant,
    cache,
    jwks,
    clock: options.clock ?? Date.now,
    fetch: fetchImpl,
  });
}
