import { type CryptoKey, createLocalJWKSet, type JSONWebKeySet, type JWK, type LocalJWKSet } from 'jose';
import { AuthSecError } from '../errors.js';
import type { Clock, Logger } from '../types.js';
import { discoverJwksUri } from './discovery.js';
import { FetchFailure, fetchJson, type HttpContext, isJsonObject } from './http.js';

/** The header fields that select a key. */
export interface KeySelector {
  readonly alg: string;
  readonly kid?: string | undefined;
}

/** The key for a header, or every candidate when several match (no `kid`, several keys of the type). */
export type FoundKeys = CryptoKey | readonly CryptoKey[];

/** Finds the verification key(s) of one issuer. */
export interface KeyResolver {
  /**
   * The key(s) for `header`: synchronously when this header was resolved before (the common case, kept off the
   * promise machinery), else a promise. Throws or rejects with `TOKEN_INVALID` when no key matches and
   * `SERVICE_UNAVAILABLE` when the keys cannot be obtained at all.
   */
  keysFor(header: KeySelector): FoundKeys | Promise<FoundKeys>;
}

interface JoseCoded {
  readonly code?: unknown;
}

/**
 * One key set, with every successful lookup remembered. Only headers that matched a key are remembered, so
 * the memo is bounded by the keys of the set whatever `kid` values tokens carry.
 */
class KeyIndex {
  readonly #set: LocalJWKSet;
  readonly #memo = new Map<string, FoundKeys>();

  constructor(doc: JSONWebKeySet) {
    this.#set = createLocalJWKSet(doc);
  }

  peek(header: KeySelector): FoundKeys | undefined {
    return this.#memo.get(header.kid === undefined ? header.alg : `${header.alg} ${header.kid}`);
  }

  // `undefined` means "no key matches"; other jose failures (a key that fails to import) propagate.
  async find(header: KeySelector): Promise<FoundKeys | undefined> {
    let found: FoundKeys | undefined;
    try {
      found = await this.#set({ alg: header.alg, kid: header.kid });
    } catch (error) {
      const code = (error as JoseCoded).code;
      if (code === 'ERR_JWKS_NO_MATCHING_KEY') return undefined;
      if (code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw error;
      const candidates: CryptoKey[] = [];
      for await (const key of error as AsyncIterable<CryptoKey>) candidates.push(key);
      if (candidates.length === 0) return undefined;
      found = Object.freeze(candidates);
    }
    this.#memo.set(header.kid === undefined ? header.alg : `${header.alg} ${header.kid}`, found);
    return found;
  }
}

function noKey(): AuthSecError {
  return new AuthSecError('TOKEN_INVALID', 'No key of the issuer matches the token');
}

/** Keys given in the options: never fetched, never refreshed. */
export function createLocalKeyResolver(keys: readonly JWK[]): KeyResolver {
  const index = new KeyIndex({ keys: [...keys] });
  return {
    keysFor(header) {
      return (
        index.peek(header) ??
        index.find(header).then((found) => {
          if (found === undefined) throw noKey();
          return found;
        })
      );
    },
  };
}

/** Limits and clock of a {@link RemoteKeySet}. */
export interface RemoteKeySetOptions {
  readonly issuer: string;
  /** Fixed JWKS URL, or `undefined` to discover it from the issuer's metadata. */
  readonly jwksUrl: string | undefined;
  readonly http: HttpContext;
  readonly cooldownMs: number;
  readonly maxAgeMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

// A key set may only ever hold public keys; a server publishing private or symmetric keys is misconfigured,
// and such entries are dropped rather than trusted.
function publicOnly(doc: Record<string, unknown>, issuer: string, logger: Logger): JSONWebKeySet {
  if (!Array.isArray(doc.keys)) throw new FetchFailure('key set has no "keys" array');
  const keys = doc.keys.filter((key: unknown): key is JWK => {
    if (!isJsonObject(key)) return false;
    const usable = key.kty !== 'oct' && key.d === undefined && key.k === undefined && key.priv === undefined;
    if (!usable) logger.warn('Ignoring a private or symmetric key published in a key set', { issuer });
    return usable;
  });
  return { keys };
}

/**
 * A remote JWKS with the behaviour AuthSec needs (jose's `createRemoteJWKSet` drops keys it cannot refresh):
 * - fetched lazily, with a deadline, a body-size limit and no redirects;
 * - used for `maxAgeMs`, then refreshed in the background while the cached keys keep serving; a failed
 *   refresh keeps the cached keys (and logs a warning);
 * - an unknown `kid` triggers at most one refetch per `cooldownMs`, concurrent refetches share one request;
 * - with no key set fetched yet and the server unreachable, `SERVICE_UNAVAILABLE` (fail closed).
 */
export class RemoteKeySet implements KeyResolver {
  readonly #options: RemoteKeySetOptions;
  #jwksUrl: string | undefined;
  #index: KeyIndex | undefined;
  #fetchedAt = 0;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;

  constructor(options: RemoteKeySetOptions) {
    this.#options = options;
    this.#jwksUrl = options.jwksUrl;
  }

  /** True once a key set has been fetched successfully. */
  get loaded(): boolean {
    return this.#index !== undefined;
  }

  /**
   * For readiness probes: whether keys are at hand. With none fetched yet it tries one fetch, unless one ran less
   * than `cooldownMs` ago (so a probe cannot make this process hammer the issuer). Never rejects.
   */
  async check(): Promise<boolean> {
    if (this.#index !== undefined) return true;
    if (this.#pending === undefined && this.#options.clock() - this.#lastAttemptAt < this.#options.cooldownMs)
      return false;
    await (this.#pending ?? this.#refresh());
    return this.#index !== undefined;
  }

  keysFor(header: KeySelector): FoundKeys | Promise<FoundKeys> {
    const index = this.#index;
    if (index === undefined) return this.#firstLoad(header);
    if (this.#pending === undefined) {
      const { clock, cooldownMs, maxAgeMs } = this.#options;
      const now = clock();
      if (now - this.#fetchedAt >= maxAgeMs && now - this.#lastAttemptAt >= cooldownMs) void this.#refresh();
    }
    return index.peek(header) ?? this.#find(index, header);
  }

  async #firstLoad(header: KeySelector): Promise<FoundKeys> {
    await this.#refresh();
    const index = this.#index;
    if (index === undefined) {
      throw new AuthSecError('SERVICE_UNAVAILABLE', 'The key set of the token issuer is unavailable');
    }
    return index.peek(header) ?? this.#find(index, header);
  }

  async #find(index: KeyIndex, header: KeySelector): Promise<FoundKeys> {
    const found = await index.find(header);
    if (found !== undefined) return found;
    // Unknown kid: maybe a rotation. Refetch, but at most once per cooldown, sharing a fetch already running.
    if (
      this.#pending !== undefined ||
      this.#options.clock() - this.#lastAttemptAt >= this.#options.cooldownMs
    ) {
      await (this.#pending ?? this.#refresh());
      const fresh = this.#index;
      if (fresh !== undefined && fresh !== index) {
        const again = await fresh.find(header);
        if (again !== undefined) return again;
      }
    }
    throw noKey();
  }

  // One request at a time: every caller arriving while a fetch runs waits for that same fetch. Never rejects.
  #refresh(): Promise<void> {
    if (this.#pending !== undefined) return this.#pending;
    const { clock, logger, issuer } = this.#options;
    this.#lastAttemptAt = clock();
    this.#pending = this.#load()
      .then(
        (index) => {
          this.#index = index;
          this.#fetchedAt = clock();
        },
        (error: unknown) => {
          const fields = { issuer, jwksUrl: this.#jwksUrl, error: describe(error) };
          if (this.#index === undefined) logger.error('Could not fetch the key set of an issuer', fields);
          else logger.warn('Could not refresh the key set of an issuer; keeping the cached keys', fields);
        },
      )
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  async #load(): Promise<KeyIndex> {
    const { http, issuer, logger } = this.#options;
    if (this.#jwksUrl === undefined) this.#jwksUrl = await discoverJwksUri(issuer, http);
    const doc = await fetchJson(this.#jwksUrl, http);
    if (!isJsonObject(doc)) throw new FetchFailure('key set is not a JSON object');
    try {
      return new KeyIndex(publicOnly(doc, issuer, logger));
    } catch (cause) {
      throw new FetchFailure('key set is malformed', undefined, { cause });
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof FetchFailure) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return error instanceof Error ? error.message : String(error);
}
