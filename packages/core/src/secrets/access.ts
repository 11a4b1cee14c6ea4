import { LRUCache } from 'lru-cache';
import type { AuthSec } from '../engine.js';
import { AuthSecError, type AuthSecErrorCode, isAuthSecError, toAuthSecError } from '../errors.js';
import type { ServiceAccess, ServiceCredentials, ServiceSummary } from '../services.js';
import type { Clock, Principal } from '../types.js';
import { MAX_SERVICE_NAME_LENGTH } from './common.js';
import type { SecretBackend, StoredServiceSecret } from './types.js';
import { hasVersionProbe } from './version-probe.js';

/**
 * `ServiceAccess`: the `services` of a tool's context. It reads the credentials of a named service for the
 * caller's tenant (from the verified principal, never from an argument), checks the service's own requirement
 * like a tool's, and records every read as a `service.read` audit event (service, caller, decision, reason:
 * never a value).
 *
 * The cache, and how a rotation reaches every process: values are cached per backend, tenant and service for
 * at most `cacheTtlMs`, and every use of a cached value first asks the backend for the service's current
 * version (`currentVersion`: one indexed query on PostgreSQL, one metadata read on Vault; no value is read or
 * decrypted). A version that moved on (a write or rotation through any process: the CLI, another replica)
 * drops the entry and the new value is read at once; a deleted service is gone at once. So the cache saves
 * the value read and its decryption, never serves a rotated-away value, and needs no notification channel.
 * When that check fails (the store is down or sealed), the call fails closed: no cached value is served. A
 * backend without `currentVersion` is not cached at all.
 */

/** The parts of the engine `ServiceAccess` uses. */
export type ServiceAccessEngine = Pick<AuthSec, 'authorize' | 'can' | 'audit' | 'logger' | 'clock'>;

/** Options of {@link createServiceAccessFactory}. */
export interface ServiceAccessFactoryOptions {
  /** Where credentials live (`createPostgresSecretBackend`, `createVaultSecretBackend`). Not closed here. */
  readonly backend: SecretBackend;
  /** The engine: checks requirements and records audit events. */
  readonly authsec: ServiceAccessEngine;
  /**
   * How long a value read from the backend may be reused, ms, always after checking that its version is still
   * the current one (see the module comment). `0` turns the cache off. Default 30000.
   */
  readonly cacheTtlMs?: number;
  /** Clock (ms) for `retrievedAt` and the cache. Default: the engine's clock. */
  readonly clock?: Clock;
}

/** Options of {@link createServiceAccess}. */
export interface ServiceAccessOptions extends ServiceAccessFactoryOptions {
  /** The caller, as `authenticate()` returned it. Its `tenantId` is the only tenant ever read. */
  readonly principal: Principal;
}

interface CacheEntry {
  readonly secret: StoredServiceSecret;
  readonly fetchedAt: number;
}

const MAX_CACHE_ENTRIES = 5_000;
// One cache per backend object, shared by every ServiceAccess over it in this process.
const caches = new WeakMap<SecretBackend, LRUCache<string, CacheEntry>>();

function cacheFor(backend: SecretBackend): LRUCache<string, CacheEntry> {
  let cache = caches.get(backend);
  if (!cache) {
    cache = new LRUCache<string, CacheEntry>({ max: MAX_CACHE_ENTRIES });
    caches.set(backend, cache);
  }
  return cache;
}

/** Drops every value cached for `backend` in this process (for example after a suspected compromise). */
export function clearServiceCache(backend: SecretBackend): void {
  caches.get(backend)?.clear();
}

function checkFactoryOptions(options: ServiceAccessFactoryOptions, what: string): number {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options are required`);
  const { backend, authsec } = options;
  if (!backend || typeof backend.read !== 'function' || typeof backend.list !== 'function') {
    throw new TypeError(`${what}: options.backend must be a SecretBackend`);
  }
  if (!authsec || typeof authsec.authorize !== 'function' || typeof authsec.audit !== 'function') {
    throw new TypeError(`${what}: options.authsec must be the AuthSec engine`);
  }
  const ttl = options.cacheTtlMs ?? 30_000;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new TypeError(`${what}: options.cacheTtlMs must be a number >= 0`);
  }
  return ttl;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
const CONTROL = /[\u0000-\u001f\u007f]/;

// A service name as it may appear in an audit record: only when well-formed, since it comes from tool code.
function auditTarget(name: unknown): string | undefined {
  return typeof name === 'string' &&
    name.length > 0 &&
    name.length <= MAX_SERVICE_NAME_LENGTH &&
    !CONTROL.test(name)
    ? name
    : undefined;
}

function build(options: ServiceAccessOptions, ttl: number): ServiceAccess {
  const { backend, authsec, principal } = options;
  if (typeof principal !== 'object' || principal === null || typeof principal.tenantId !== 'string') {
    throw new TypeError('createServiceAccess: options.principal must be an authenticated principal');
  }
  const clock = options.clock ?? authsec.clock ?? Date.now;
  const tenantId = principal.tenantId;
  const cache = cacheFor(backend);
  const probe = hasVersionProbe(backend) ? backend : undefined;

  const load = async (name: string): Promise<StoredServiceSecret | undefined> => {
    const key = `${tenantId}\u0000${name}`;
    const now = clock();
    const entry = cache.get(key);
    if (entry && probe && ttl > 0 && now - entry.fetchedAt < ttl) {
      const version = await probe.currentVersion(tenantId, name);
      if (version === entry.secret.version) return entry.secret;
      cache.delete(key);
      if (version === undefined) return undefined;
    }
    const secret = await backend.read(tenantId, name);
    if (secret && probe && ttl > 0) cache.set(key, { secret, fetchedAt: now });
    else cache.delete(key);
    return secret;
  };

  const read = async (name: string): Promise<ServiceCredentials> => {
    const started = performance.now();
    const target = auditTarget(name);
    const record = (decision: 'allow' | 'deny' | 'error', reason?: AuthSecErrorCode, failed?: unknown) =>
      authsec.audit({
        action: 'service.read',
        decision,
        principal,
        ...(target === undefined ? {} : { target }),
        ...(reason === undefined ? {} : { reason }),
        ...(Array.isArray(failed) ? { failed: failed as string[] } : {}),
        latencyMicros: Math.round((performance.now() - started) * 1000),
      });
    let secret: StoredServiceSecret | undefined;
    try {
      if (target === undefined) throw new AuthSecError('BAD_REQUEST', 'Invalid service name');
      secret = await load(name);
    } catch (error) {
      const err = toAuthSecError(error);
      if (err.status >= 500) {
        // Server-side only: the code and the message, which never hold a value.
        authsec.logger.warn('Service credentials could not be read', {
          service: target,
          tenant: tenantId,
          code: err.code,
          error: err.message,
        });
      }
      record(err.status >= 500 ? 'error' : 'deny', err.code);
      throw err;
    }
    if (!secret) {
      // The same answer whether the name exists in another tenant or nowhere: only this tenant is ever read.
      record('deny', 'NOT_FOUND');
      throw new AuthSecError('NOT_FOUND', `Unknown service '${name}'`, { details: { service: name } });
    }
    if (secret.requirement !== undefined) {
      try {
        authsec.authorize(principal, secret.requirement, `service:${name}`);
      } catch (error) {
        if (isAuthSecError(error)) {
          record('deny', error.code, error.details.failed);
          throw error;
        }
        // A stored requirement the engine cannot compile: refuse, and say so server-side.
        authsec.logger.error('The stored requirement of a service is invalid; access refused', {
          service: name,
          tenant: tenantId,
          error: String((error as Error)?.message ?? error),
        });
        record('error', 'INTERNAL');
        throw new AuthSecError('INTERNAL', `The requirement of service '${name}' is invalid`);
      }
    }
    record('allow');
    return Object.freeze({
      serviceName: secret.name,
      serviceType: secret.serviceType,
      authType: secret.authType,
      url: secret.url,
      credentials: Object.freeze({ ...secret.credentials }),
      metadata: Object.freeze({ ...secret.metadata }),
      retrievedAt: clock(),
    });
  };

  const readable = (requirement: StoredServiceSecret['requirement'], name: string): boolean => {
    if (requirement === undefined) return true;
    try {
      return authsec.can(principal, requirement);
    } catch (error) {
      authsec.logger.error('The stored requirement of a service is invalid; hidden from listings', {
        service: name,
        tenant: tenantId,
        error: String((error as Error)?.message ?? error),
      });
      return false;
    }
  };

  return Object.freeze({
    getServiceCredentials: read,
    async getServiceToken(name: string): Promise<string> {
      const service = await read(name);
      const token = service.credentials.access_token ?? service.credentials.token;
      if (token === undefined) {
        throw new AuthSecError('NOT_FOUND', `Service '${name}' has no access_token or token`, {
          details: { service: name },
        });
      }
      return token;
    },
    async listServices(): Promise<ServiceSummary[]> {
      const all = await backend.list(tenantId);
      return all
        .filter((s) => readable(s.requirement, s.name))
        .map((s) =>
          Object.freeze({
            serviceName: s.name,
            serviceType: s.serviceType,
            url: s.url,
            metadata: Object.freeze({ ...s.metadata }),
          }),
        );
    },
  });
}

/**
 * The `services` of one caller: reads of its tenant's services, each checked against the service's
 * requirement and audited. Values are cached per backend across calls (see the module comment).
 */
export function createServiceAccess(options: ServiceAccessOptions): ServiceAccess {
  return build(options, checkFactoryOptions(options, 'createServiceAccess'));
}

/**
 * What a server passes as `services`: `(principal) => ServiceAccess`, with the options checked once, here.
 *
 * @example
 * ```ts
 * createAuthSecServer({ ..., services: createServiceAccessFactory({ backend, authsec }) });
 * ```
 */
export function createServiceAccessFactory(
  options: ServiceAccessFactoryOptions,
): (principal: Principal) => ServiceAccess {
  const ttl = checkFactoryOptions(options, 'createServiceAccessFactory');
  return (principal) => build({ ...options, principal }, ttl);
}
