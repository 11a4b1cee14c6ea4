import { hash } from 'node:crypto';
import { type CryptoKey, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import { AuthSecError, isAuthSecError } from '../errors.js';
import type { CacheLookup } from '../telemetry.js';
import type { Logger, Principal } from '../types.js';
import type { ResolvedIssuer, ResolvedTokenConfig } from './config.js';
import { type HttpContext, isJsonObject } from './http.js';
import { introspectToken } from './introspection.js';
import { toTokenError } from './jose-errors.js';
import {
  createLocalKeyResolver,
  type FoundKeys,
  type KeyResolver,
  type KeySelector,
  RemoteKeySet,
} from './key-set.js';
import { checkTokenLifetime } from './lifetime.js';
import { buildPrincipal } from './principal.js';

/** Verifies bearer tokens and returns the caller's principal. Create one with {@link createTokenVerifier}. */
export interface TokenVerifier {
  /**
   * Verifies `token` (a JWT, or an opaque token when the issuer has introspection) and returns its frozen
   * principal (arrays and claim set frozen too). A repeated token is served from the verified-token cache,
   * as the same object, until its `exp`. A validity window longer than `maxTokenLifetimeSeconds`, or an `iat`
   * in the future, is `TOKEN_INVALID`. Throws an `AuthSecError`: `TOKEN_MISSING`, `TOKEN_INVALID`,
   * `TOKEN_EXPIRED`, `TOKEN_AUDIENCE`, `TOKEN_ISSUER`, `TENANT_UNKNOWN`, or `SERVICE_UNAVAILABLE` when keys or
   * introspection cannot be reached (fail closed). `lookup.cache` is set to `'hit'` or `'miss'` when the
   * verified-token cache was consulted (for telemetry), and left unset when it was not.
   */
  verify(token: string, lookup?: CacheLookup): Promise<Principal>;
  /**
   * For readiness probes: for each issuer whose keys are fetched from its JWKS, whether keys are at hand (see
   * `RemoteKeySet.check`). Issuers with local keys, a secret or introspection only are not listed.
   */
  checkKeys(): Promise<Record<string, boolean>>;
  /** Entries in the verified-token cache (0 when the cache is disabled). */
  readonly cacheSize: number;
  /** Drops every cached verification (for example after a key compromise). */
  clearCache(): void;
  /** Aborts in-flight fetches and releases everything; later `verify` calls fail with `SERVICE_UNAVAILABLE`. */
  close(): void;
}

interface IssuerRuntime {
  readonly issuer: ResolvedIssuer;
  readonly algorithms: ReadonlySet<string>;
  /** Everything jose needs, built once; `currentDate` is a getter that reads the injected clock. */
  readonly options: JWTVerifyOptions;
  readonly secret: Uint8Array | undefined;
  readonly keys: KeyResolver | undefined;
}

// Three base64url segments; an empty signature still counts, so a stripped token is refused as a JWT.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const JWE_SHAPE = /^[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){4}$/;
// RFC 6750 §2.1 b64token.
const OPAQUE_SHAPE = /^[A-Za-z0-9\-._~+/]+=*$/;
// Headers that would let the token choose its own key: never followed, and refused outright.
const KEY_BEARING_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;
// Introspection exists so that revocation takes effect: cache its answers briefly, whatever their `exp`.
const INTROSPECTION_CACHE_MS = 60_000;

function invalid(message: string): AuthSecError {
  return new AuthSecError('TOKEN_INVALID', message);
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw invalid(`Token ${what} is not base64url-encoded JSON`);
  }
  if (!isJsonObject(value)) throw invalid(`Token ${what} is not a JSON object`);
  return value;
}

function isKeyList(value: FoundKeys): value is readonly CryptoKey[] {
  return Array.isArray(value);
}

function issuerRuntime(
  issuer: ResolvedIssuer,
  config: ResolvedTokenConfig,
  http: HttpContext,
  logger: Logger,
): IssuerRuntime {
  const { clock } = config;
  // jose reads `currentDate` once, when it checks the claims: the getter gives the time of that check without
  // a per-call copy of the options.
  const options: JWTVerifyOptions = {
    algorithms: [...issuer.algorithms] as JWTVerifyOptions['algorithms'],
    issuer: issuer.issuer,
    audience: [...config.audience],
    clockTolerance: config.clockToleranceSeconds,
    requiredClaims: ['exp'],
    ...(config.requiredTokenType === undefined ? {} : { typ: config.requiredTokenType }),
    get currentDate() {
      return new Date(clock());
    },
  };
  const source = issuer.keySource;
  let keys: KeyResolver | undefined;
  if (source.kind === 'local') keys = createLocalKeyResolver(source.keys);
  else if (source.kind === 'remote') {
    keys = new RemoteKeySet({
      issuer: issuer.issuer,
      jwksUrl: source.jwksUrl,
      http,
      cooldownMs: config.jwks.cooldownMs,
      maxAgeMs: config.jwks.maxAgeMs,
      clock,
      logger,
    });
  }
  return {
    issuer,
    algorithms: new Set(issuer.algorithms),
    options,
    secret: source.kind === 'secret' ? source.secret : undefined,
    keys,
  };
}

// Several keys match (no `kid`): the first whose signature verifies decides.
async function verifyWithEach(
  token: string,
  keys: readonly CryptoKey[],
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  let failure: unknown = invalid('No key of the issuer matches the token');
  for (const key of keys) {
    try {
      return (await jwtVerify(token, key, options)).payload;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw error;
      failure = error;
    }
  }
  throw failure;
}

/**
 * Creates a token verifier from a resolved configuration (see `resolveTokenConfig`). Everything per issuer
 * (verify options, algorithm sets, key resolvers) is built here, once; remote key sets are fetched lazily.
 */
export function createTokenVerifier(config: ResolvedTokenConfig, logger: Logger): TokenVerifier {
  const lifetime = new AbortController();
  const http: HttpContext = {
    fetch: config.fetch,
    timeoutMs: config.jwks.timeoutMs,
    maxBytes: config.jwks.maxBytes,
    signal: lifetime.signal,
  };
  const runtimes = new Map<string, IssuerRuntime>();
  for (const issuer of config.issuers)
    runtimes.set(issuer.issuer, issuerRuntime(issuer, config, http, logger));
  const introspecting = config.issuers.find((issuer) => issuer.introspection !== undefined);
  const { clock, maxTokenBytes, defaultTenant, clockToleranceSeconds, maxTokenLifetimeSeconds } = config;
  const cache = config.cache.enabled
    ? new LRUCache<string, Principal>({
        max: config.cache.maxEntries,
        // TTLs follow the injected clock; a resolution of 0 reads it on every check and starts no timer.
        perf: { now: () => clock() },
        ttlResolution: 0,
        updateAgeOnGet: false,
        allowStale: false,
      })
    : undefined;
  const inflight = new Map<string, Promise<Principal>>();
  let closed = false;

  // Everything up to the signature check is synchronous and cheap, and refuses before any key lookup.
  function selectIssuer(token: string): { runtime: IssuerRuntime; selector: KeySelector } {
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    const header = decodeSegment(token.slice(0, dot1), 'header');
    const alg = header.alg;
    if (typeof alg !== 'string' || alg === '') throw invalid('Token has no algorithm');
    if (alg.toLowerCase() === 'none') throw invalid('Unsigned tokens are never accepted');
    for (const name of KEY_BEARING_HEADERS) {
      if (header[name] !== undefined) throw invalid(`Token header '${name}' is not accepted`);
    }
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') throw invalid('Token key id is not a string');
    // The unverified `iss` only selects whose keys to try; jose checks it again against the verified payload.
    const iss = decodeSegment(token.slice(dot1 + 1, dot2), 'payload').iss;
    const runtime = typeof iss === 'string' ? runtimes.get(iss) : undefined;
    if (runtime === undefined) throw new AuthSecError('TOKEN_ISSUER', 'Token issuer is not trusted');
    if (!runtime.algorithms.has(alg)) throw invalid('Token algorithm is not allowed');
    return { runtime, selector: { alg, kid } };
  }

  async function verifyJwt(token: string): Promise<Principal> {
    const { runtime, selector } = selectIssuer(token);
    let payload: JWTPayload;
    try {
      if (runtime.secret !== undefined) {
        payload = (await jwtVerify(token, runtime.secret, runtime.options)).payload;
      } else {
        let keys = runtime.keys!.keysFor(selector);
        if (keys instanceof Promise) keys = await keys;
        payload = isKeyList(keys)
          ? await verifyWithEach(token, keys, runtime.options)
          : (await jwtVerify(token, keys, runtime.options)).payload;
      }
    } catch (error) {
      if (!isAuthSecError(error) && typeof (error as { code?: unknown }).code !== 'string') {
        logger.warn('Unexpected failure while verifying a token', {
          issuer: runtime.issuer.issuer,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      throw toTokenError(error);
    }
    // jose has checked that `exp` is a number that has not passed, and the type of `iat`; not how far ahead
    // either of them is.
    checkTokenLifetime(payload.exp!, payload.iat, {
      now: Math.floor(clock() / 1000),
      clockToleranceSeconds,
      maxTokenLifetimeSeconds,
    });
    return buildPrincipal(payload, runtime.issuer, defaultTenant, payload.exp!);
  }

  async function verifyOpaque(token: string): Promise<Principal> {
    if (introspecting === undefined) throw invalid('Token is not a JWT and no issuer has introspection');
    if (!OPAQUE_SHAPE.test(token)) throw invalid('Token is malformed');
    const claims = await introspectToken(
      token,
      introspecting.introspection!,
      {
        issuer: introspecting.issuer,
        audience: config.audience,
        clockToleranceSeconds,
        maxTokenLifetimeSeconds,
        now: Math.floor(clock() / 1000),
      },
      http,
      logger,
    );
    return buildPrincipal(claims, introspecting, defaultTenant, claims.exp as number);
  }

  async function verifyUncached(token: string, key: string): Promise<Principal> {
    let principal: Principal;
    let cacheForMs = Number.POSITIVE_INFINITY;
    if (JWT_SHAPE.test(token)) principal = await verifyJwt(token);
    else if (JWE_SHAPE.test(token)) throw invalid('Encrypted tokens (JWE) are not accepted');
    else {
      principal = await verifyOpaque(token);
      cacheForMs = INTROSPECTION_CACHE_MS;
    }
    if (cache !== undefined && !closed) {
      const ttl = Math.floor(Math.min(principal.expiresAt * 1000 - clock(), cacheForMs));
      // A token already past `exp` (accepted within the clock tolerance) is never cached.
      if (ttl >= 1) cache.set(key, principal, { ttl });
    }
    return principal;
  }

  // Not `async`: a cache hit resolves without the extra promise hops of an async function.
  function verify(token: string, lookup?: CacheLookup): Promise<Principal> {
    if (typeof token !== 'string' || token.length === 0) {
      return Promise.reject(new AuthSecError('TOKEN_MISSING', 'No bearer token was presented'));
    }
    // Before any parsing. UTF-8 takes 1 to 3 bytes per UTF-16 unit: only strings over a third of the limit
    // need counting.
    if (
      token.length > maxTokenBytes ||
      (token.length * 3 > maxTokenBytes && Buffer.byteLength(token) > maxTokenBytes)
    ) {
      return Promise.reject(invalid('Token is too large'));
    }
    if (closed)
      return Promise.reject(new AuthSecError('SERVICE_UNAVAILABLE', 'The token verifier is closed'));
    const key = hash('sha256', token, 'base64url');
    if (cache !== undefined) {
      const hit = cache.get(key);
      if (hit !== undefined) {
        if (hit.expiresAt * 1000 > clock()) {
          if (lookup !== undefined) lookup.cache = 'hit';
          return Promise.resolve(hit);
        }
        cache.delete(key);
      }
      if (lookup !== undefined) lookup.cache = 'miss';
    }
    const pending = inflight.get(key);
    if (pending !== undefined) return pending;
    const started = verifyUncached(token, key);
    inflight.set(key, started);
    const settle = () => inflight.delete(key);
    started.then(settle, settle);
    return started;
  }

  return {
    verify,
    async checkKeys() {
      const remote = [...runtimes.values()].filter((r) => r.keys instanceof RemoteKeySet);
      const results = await Promise.all(remote.map((r) => (r.keys as RemoteKeySet).check()));
      return Object.fromEntries(remote.map((r, i) => [r.issuer.issuer, results[i]!]));
    },
    get cacheSize() {
      return cache?.size ?? 0;
    },
    clearCache() {
      cache?.clear();
    },
    close() {
      if (closed) return;
      closed = true;
      lifetime.abort();
      cache?.clear();
    },
  };
}
