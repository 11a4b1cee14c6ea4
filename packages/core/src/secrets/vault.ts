import vault from 'node-vault';
import { AuthSecError, isAuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import type { Clock, Logger, Requirement } from '../types.js';
import {
  type CheckedInput,
  checkCredentials,
  checkGraceMs,
  checkInput,
  checkServiceName,
  checkTenantId,
  checkVersion,
  deepFreeze,
  secretSummary,
  serviceSlug,
  storedSecret,
} from './common.js';
import type { SecretBackend, ServiceSecretSummary, StoredServiceSecret } from './types.js';
import type { SecretVersionProbe } from './version-probe.js';

/**
 * HashiCorp Vault KV v2 as the secret backend, through node-vault.
 *
 * Layout: one KV v2 secret per tenant and service, at `<mount>/data/<pathPrefix>/<tenant>/<slug>`, where the
 * slug is the service name in lowercase letters, digits and `-` ("GitHub API Integration" →
 * `github-api-integration`). The secret's data holds the credentials as they are (`access_token=...`), as an
 * operator would write them with `vault kv put`; what AuthSec knows about the service (exact name, type, auth
 * type, URL, metadata, requirement, credential keys, rotation grace deadlines) is the key's
 * `custom_metadata`, so listing never reads a value. A second name with the same slug is refused.
 *
 * Rotation and grace: KV v2 keeps versions. `rotate` writes version N+1 and records "version N readable until
 * T" in `custom_metadata.authsec_grace`; `read(..., { version: N })` answers only while T has not passed (on
 * the injected clock), and every write or rotation destroys the versions whose grace has ended (and, without
 * grace, the previous one at once), so an old value does not linger in Vault either.
 *
 * Authentication: a token (`AUTHSEC_VAULT_TOKEN`), or AppRole (`role_id` + `secret_id`) logged in at first use
 * and again when the token has expired or is refused. Renewable tokens are renewed (`renew-self`) once two
 * thirds of their TTL have passed: by an unref'd timer, and before any call that finds the token that old.
 *
 * Faults fail closed: sealed (503), unreachable, slower than `timeoutMs` for a whole operation, refusing
 * (403) or any other error is `SERVICE_UNAVAILABLE` (403 and a missing mount also log an error saying what to
 * fix), bounded by `timeoutMs`, never a crash, never another tenant's value and never a fallback to another
 * store. A missing secret (404) is "not found". Errors carry a cause without request bodies, so no value can
 * reach a log through them; node-vault's own debug output is switched off for the same reason.
 */

/** Options of {@link createVaultSecretBackend}. `AuthSecEnvOptions['vault']` can be passed as it is. */
export interface VaultSecretBackendOptions {
  /** Vault address, e.g. `https://vault.example:8200` (`AUTHSEC_VAULT_ADDR`). */
  readonly addr: string;
  /** A Vault token (`AUTHSEC_VAULT_TOKEN`). Either this or `roleId` + `secretId`. */
  readonly token?: string | undefined;
  /** AppRole role id (`AUTHSEC_VAULT_ROLE_ID`), with `secretId`. */
  readonly roleId?: string | undefined;
  /** AppRole secret id (`AUTHSEC_VAULT_SECRET_ID`). */
  readonly secretId?: string | undefined;
  /** Mount path of the AppRole auth method. Default `'approle'`. */
  readonly approleMount?: string;
  /** Vault Enterprise namespace, sent as `X-Vault-Namespace` (`AUTHSEC_VAULT_NAMESPACE`). Default: none. */
  readonly namespace?: string | undefined;
  /** Mount path of the KV v2 engine (`AUTHSEC_VAULT_MOUNT`). Default `'secret'`. */
  readonly mount?: string;
  /** Folder under the mount that holds one folder per tenant. Default `'authsec'`. */
  readonly pathPrefix?: string;
  /**
   * Longest time one operation (login and renewal included) may take before it fails with
   * `SERVICE_UNAVAILABLE`, ms. Default 5000.
   */
  readonly timeoutMs?: number;
  /** Renew renewable tokens before they expire. Default `true`. */
  readonly renew?: boolean;
  /** Logger. Default: JSON lines on stderr. */
  readonly logger?: Logger;
  /** Clock (ms) for grace deadlines and token lifetimes. Default `Date.now`. */
  readonly clock?: Clock;
}

/** The Vault {@link SecretBackend}. */
export interface VaultSecretBackend extends SecretBackend, SecretVersionProbe {
  readonly kind: 'vault';
}

type VaultClient = ReturnType<typeof vault>;

interface KvMetadata {
  readonly current_version?: number;
  readonly updated_time?: string;
  readonly custom_metadata?: Record<string, string> | null;
  readonly versions?: Record<string, { deletion_time?: string; destroyed?: boolean; created_time?: string }>;
}

interface KvRead {
  readonly data?: Record<string, unknown> | null;
  readonly metadata?: {
    readonly version?: number;
    readonly created_time?: string;
    readonly deletion_time?: string;
    readonly destroyed?: boolean;
    readonly custom_metadata?: Record<string, string> | null;
  };
}

const PATH_SEGMENTS = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
const CUSTOM_VALUE_MAX_BYTES = 512;
const CAS_RETRIES = 3;
const LIST_CONCURRENCY = 8;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** Custom metadata keys AuthSec owns on a Vault secret. */
const META = {
  name: 'authsec_name',
  serviceType: 'authsec_service_type',
  authType: 'authsec_auth_type',
  url: 'authsec_url',
  requirement: 'authsec_requirement',
  keys: 'authsec_keys',
  grace: 'authsec_grace',
  metadataPrefix: 'authsec_meta.',
} as const;

class VaultTimeout extends Error {}

function statusOf(error: unknown): number | undefined {
  const status = (error as { response?: { statusCode?: unknown } } | null)?.response?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function vaultMessage(error: unknown): string {
  const errors = (error as { response?: { body?: { errors?: unknown } } })?.response?.body?.errors;
  return Array.isArray(errors) ? errors.filter((e) => typeof e === 'string').join('; ') : '';
}

function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  }
  return undefined;
}

function isNotFound(error: unknown): boolean {
  return statusOf(error) === 404 && !/no handler for route/i.test(vaultMessage(error));
}

function parseJson<T>(value: string | undefined, what: string): T | undefined {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    throw new AuthSecError('INTERNAL', `Vault custom metadata '${what}' is not valid JSON`);
  }
}

function timeOf(value: string | undefined, fallback: number): number {
  const t = value ? Date.parse(value) : Number.NaN;
  return Number.isFinite(t) ? t : fallback;
}

// External secrets (written with `vault kv put`) may hold non-string values: read them as text.
function credentialsOf(data: Record<string, unknown>): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) {
    if (value === null || value === undefined) continue;
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return Object.freeze(out);
}

/** Creates the Vault secret backend (see the module comment). Nothing is sent before the first operation. */
export function createVaultSecretBackend(options: VaultSecretBackendOptions): VaultSecretBackend {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createVaultSecretBackend: options are required');
  }
  const config = (message: string) => new AuthSecError('CONFIG_INVALID', message);
  let endpoint: URL;
  try {
    endpoint = new URL(options.addr);
  } catch {
    throw config('Vault addr: not a valid URL');
  }
  if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:')
    throw config('Vault addr: http(s) only');
  const token = options.token || undefined;
  const roleId = options.roleId || undefined;
  const secretId = options.secretId || undefined;
  if (!token && !(roleId && secretId))
    throw config('Vault: a token, or an AppRole roleId and secretId, is required');
  if (Boolean(roleId) !== Boolean(secretId)) throw config('Vault: roleId and secretId go together');
  const mount = options.mount ?? 'secret';
  if (!PATH_SEGMENTS.test(mount))
    throw config('Vault mount: letters, digits, _ and - in /-separated segments');
  const prefix = options.pathPrefix ?? 'authsec';
  if (!PATH_SEGMENTS.test(prefix))
    throw config('Vault pathPrefix: letters, digits, _ and - in /-separated segments');
  const approleMount = options.approleMount ?? 'approle';
  if (!PATH_SEGMENTS.test(approleMount)) throw config('Vault approleMount: invalid mount path');
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw config('Vault timeoutMs: a positive number is required');
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? Date.now;
  const renew = options.renew !== false;
  const namespace = options.namespace || undefined;
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(endpoint.hostname);
  if (endpoint.protocol === 'http:' && !loopback) {
    logger.warn(
      'Vault is reached over plain HTTP: tokens and secrets cross the network unencrypted; use https',
      {
        addr: endpoint.origin,
      },
    );
  }

  const client: VaultClient = vault({
    apiVersion: 'v1',
    endpoint: options.addr,
    ...(token ? { token } : {}),
    ...(namespace ? { namespace } : {}),
    requestOptions: { timeout: timeoutMs },
    // Lists as `GET ?list=1`, which Vault documents beside the LIST verb and every proxy passes.
    noCustomHTTPVerbs: true,
    // node-vault's debug output would print request bodies (values) when DEBUG names it.
    debug: () => {},
    // Never inherit VAULT_SKIP_VERIFY from the environment: TLS is always verified.
    rpDefaults: { strictSSL: true },
  } as Parameters<typeof vault>[0]);
  // node-vault falls back to VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX: only our configuration counts.
  const mutable = client as VaultClient & { namespace?: string; pathPrefix?: string };
  mutable.token = token ?? '';
  mutable.namespace = namespace ?? '';
  mutable.pathPrefix = '';

  const unavailable = (message: string, cause?: unknown) =>
    new AuthSecError('SERVICE_UNAVAILABLE', message, cause === undefined ? {} : { cause });

  let closed = false;
  // Token lifetime as known from the last login, lookup or renewal (clock ms); undefined: unknown or never.
  let tokenExpiresAt: number | undefined;
  let renewAt: number | undefined;
  let renewable = false;
  let started: Promise<void> | undefined;
  let renewing: Promise<void> | undefined;
  let loggingIn: Promise<void> | undefined;
  let renewTimer: NodeJS.Timeout | undefined;

  const learnLease = (leaseSeconds: unknown, isRenewable: unknown) => {
    const seconds = typeof leaseSeconds === 'number' && leaseSeconds > 0 ? leaseSeconds : 0;
    const now = clock();
    renewable = isRenewable === true && seconds > 0;
    tokenExpiresAt = seconds > 0 ? now + seconds * 1000 : undefined;
    renewAt = seconds > 0 ? now + Math.floor((seconds * 1000 * 2) / 3) : undefined;
    if (renewTimer) clearTimeout(renewTimer);
    renewTimer = undefined;
    if (renew && renewable && renewAt !== undefined && !closed) {
      renewTimer = setTimeout(
        () => {
          renewTimer = undefined;
          void renewNow().catch(() => {});
        },
        Math.max(1000, renewAt - now),
      );
      renewTimer.unref();
    }
  };

  const login = (): Promise<void> => {
    loggingIn ??= (async () => {
      try {
        const response = (await client.approleLogin({
          role_id: roleId,
          secret_id: secretId,
          ...(approleMount === 'approle' ? {} : { mount_point: approleMount }),
        })) as { auth?: { client_token?: string; lease_duration?: number; renewable?: boolean } };
        if (!response?.auth?.client_token) throw unavailable('Vault AppRole login returned no token');
        client.token = response.auth.client_token;
        learnLease(response.auth.lease_duration, response.auth.renewable);
        logger.debug('Logged in to Vault with AppRole');
      } catch (error) {
        const status = statusOf(error);
        if (status !== undefined && status >= 400 && status < 500) {
          // Refused credentials are a configuration problem: say so where the operator looks.
          logger.error(
            'Vault AppRole login was refused: check the role id, the secret id and the AppRole mount',
            {
              status,
              mount: approleMount,
              namespace,
            },
          );
          throw unavailable(`Vault AppRole login was refused (${status})`, new Error(`Vault ${status}`));
        }
        throw error;
      } finally {
        loggingIn = undefined;
      }
    })();
    return loggingIn;
  };

  const renewNow = (): Promise<void> => {
    renewing ??= (async () => {
      try {
        const response = (await client.tokenRenewSelf({})) as {
          auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
        };
        learnLease(response?.auth?.lease_duration, response?.auth?.renewable);
        logger.debug('Renewed the Vault token');
      } catch (error) {
        logger.warn('Vault token renewal failed', {
          status: statusOf(error),
          error: vaultMessage(error) || networkCode(error),
        });
        // Renew no more: AppRole logs in again once the token is gone; a static token runs until it expires.
        renewAt = undefined;
        throw error;
      } finally {
        renewing = undefined;
      }
    })();
    return renewing;
  };

  // First use: AppRole logs in; a static token is looked up to learn whether and when to renew it.
  const start = (): Promise<void> => {
    started ??= (async () => {
      if (roleId) {
        await login();
        return;
      }
      try {
        const response = (await client.tokenLookupSelf()) as { data?: { ttl?: number; renewable?: boolean } };
        learnLease(response?.data?.ttl, response?.data?.renewable);
      } catch (error) {
        // A token without lookup-self rights still reads secrets: it is simply not renewed. Other failures
        // are retried at the next operation.
        if (statusOf(error) !== 403) {
          started = undefined;
          return;
        }
        logger.warn('The Vault token may not look itself up: it will not be renewed');
      }
    })();
    return started;
  };

  const ensureToken = async (): Promise<void> => {
    await start();
    const now = clock();
    if (roleId && tokenExpiresAt !== undefined && now >= tokenExpiresAt - 1000) {
      await login();
      return;
    }
    if (renew && renewable && renewAt !== undefined && now >= renewAt) {
      try {
        await renewNow();
      } catch (error) {
        if (roleId) await login();
        else if (tokenExpiresAt !== undefined && now >= tokenExpiresAt) throw error;
      }
    }
  };

  // Maps any failure to a coded error whose cause holds no request or response body.
  const mapError = (error: unknown, what: string): AuthSecError => {
    if (isAuthSecError(error)) return error;
    if (error instanceof VaultTimeout)
      return unavailable(`Vault did not answer within ${timeoutMs} ms (${what})`);
    const status = statusOf(error);
    const message = vaultMessage(error);
    const cause = new Error(
      `Vault ${status ?? networkCode(error) ?? 'error'}${message ? `: ${message}` : ''}`,
    );
    if (status === 403) {
      logger.error('Vault refused AuthSec (403): check the policy of its token or AppRole for this path', {
        operation: what,
        mount,
        namespace,
      });
      return unavailable('Vault refused the request (403)', cause);
    }
    if (status === 503) return unavailable('Vault is sealed or unavailable (503)', cause);
    if (status === 404) {
      logger.error('Vault has no KV v2 engine at this mount (404 no handler for route): check the mount', {
        operation: what,
        mount,
        namespace,
      });
      return unavailable(`Vault mount '${mount}' was not found`, cause);
    }
    if (status === 429 || (status !== undefined && status >= 500)) {
      return unavailable(`Vault is unavailable (${status})`, cause);
    }
    if (status !== undefined)
      return new AuthSecError('INTERNAL', `Vault refused the request (${status})`, { cause });
    const code = networkCode(error);
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT')
      return unavailable(`Vault did not answer within ${timeoutMs} ms`, cause);
    if (code) return unavailable(`Vault is unreachable (${code})`, cause);
    return unavailable('Vault could not be reached', new Error(String((error as Error)?.message ?? error)));
  };

  /**
   * Runs one operation within `timeoutMs`, with a valid token. An AppRole token refused with 403 (revoked,
   * expired early) gets one fresh login and one retry.
   */
  const operation = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    if (closed) throw unavailable('The Vault secret backend is closed');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VaultTimeout()), timeoutMs);
      timer.unref();
    });
    const attempt = async (): Promise<T> => {
      await ensureToken();
      try {
        return await fn();
      } catch (error) {
        if (roleId && statusOf(error) === 403) {
          await login();
          return fn();
        }
        throw error;
      }
    };
    try {
      return await Promise.race([attempt(), deadline]);
    } catch (error) {
      throw mapError(error, what);
    } finally {
      clearTimeout(timer);
    }
  };

  const folder = (tenantId: string) => `${prefix}/${tenantId}`;
  const dataPath = (tenantId: string, slug: string) => `${mount}/data/${folder(tenantId)}/${slug}`;
  const metaPath = (tenantId: string, slug: string) => `${mount}/metadata/${folder(tenantId)}/${slug}`;

  const readMetadata = async (path: string): Promise<KvMetadata | undefined> => {
    try {
      const response = (await client.read(path)) as { data?: KvMetadata };
      return response?.data ?? undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  };

  const readData = async (path: string, version?: number): Promise<KvRead | undefined> => {
    try {
      const response = (await client.read(version === undefined ? path : `${path}?version=${version}`)) as {
        data?: KvRead;
      };
      return response?.data ?? undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  };

  // What the custom metadata says about the service; `undefined` when it belongs to another name.
  const describe = (
    name: string,
    slug: string,
    custom: Record<string, string> | null | undefined,
  ): (Omit<CheckedInput, 'credentials'> & { keys: string[]; grace: Record<string, number> }) | undefined => {
    const c = custom ?? {};
    const owner = c[META.name];
    // A secret written outside AuthSec has no name: it answers to the names whose slug is its path.
    if (owner !== undefined ? owner !== name : serviceSlug(name) !== slug) return undefined;
    const metadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(c)) {
      if (key.startsWith(META.metadataPrefix)) metadata[key.slice(META.metadataPrefix.length)] = value;
    }
    const requirement = parseJson<Requirement>(c[META.requirement], META.requirement);
    return {
      name,
      serviceType: c[META.serviceType] || undefined,
      authType: c[META.authType] || undefined,
      url: c[META.url] || undefined,
      metadata: Object.freeze(metadata),
      requirement: requirement === undefined ? undefined : deepFreeze(requirement),
      keys: parseJson<string[]>(c[META.keys], META.keys) ?? [],
      grace: parseJson<Record<string, number>>(c[META.grace], META.grace) ?? {},
    };
  };

  const customMetadata = (
    fields: Omit<CheckedInput, 'credentials'>,
    keys: readonly string[],
    grace: Record<string, number>,
  ): Record<string, string> => {
    const c: Record<string, string> = {
      [META.name]: fields.name,
      [META.keys]: JSON.stringify([...keys].sort()),
    };
    if (fields.serviceType) c[META.serviceType] = fields.serviceType;
    if (fields.authType) c[META.authType] = fields.authType;
    if (fields.url) c[META.url] = fields.url;
    if (fields.requirement) c[META.requirement] = JSON.stringify(fields.requirement);
    if (Object.keys(grace).length > 0) c[META.grace] = JSON.stringify(grace);
    for (const [key, value] of Object.entries(fields.metadata)) c[`${META.metadataPrefix}${key}`] = value;
    for (const [key, value] of Object.entries(c)) {
      if (Buffer.byteLength(value, 'utf8') > CUSTOM_VALUE_MAX_BYTES) {
        const field = key === META.requirement ? 'requirement' : key === META.url ? 'url' : key;
        throw new AuthSecError(
          'BAD_REQUEST',
          `Invalid ${field}: Vault custom metadata values hold at most ${CUSTOM_VALUE_MAX_BYTES} bytes`,
        );
      }
    }
    return c;
  };

  const live = (meta: KvMetadata, version: number): boolean => {
    const v = meta.versions?.[String(version)];
    return v !== undefined && !v.destroyed && !v.deletion_time;
  };

  /**
   * Writes `credentials` as the next version, keeps the versions `keepOld` says (grace deadlines), updates the
   * custom metadata and destroys every other earlier version. Retries when another writer won the race.
   */
  const writeVersion = async (
    tenantId: string,
    slug: string,
    prepare: (meta: KvMetadata | undefined) => {
      fields: Omit<CheckedInput, 'credentials'>;
      credentials: Readonly<Record<string, string>>;
      grace: Record<string, number>;
    },
  ): Promise<StoredServiceSecret> => {
    for (let attempt = 1; ; attempt++) {
      const meta = await readMetadata(metaPath(tenantId, slug));
      const { fields, credentials, grace } = prepare(meta);
      const keys = Object.keys(credentials).sort();
      const custom = customMetadata(fields, keys, grace);
      let written: { data?: { version?: number; created_time?: string } };
      try {
        written = (await client.write(dataPath(tenantId, slug), {
          options: { cas: meta?.current_version ?? 0 },
          data: credentials,
        })) as typeof written;
      } catch (error) {
        if (statusOf(error) === 400 && /check-and-set/i.test(vaultMessage(error)) && attempt < CAS_RETRIES)
          continue;
        throw error;
      }
      const version = written?.data?.version;
      if (typeof version !== 'number') throw unavailable('Vault answered a write without a version');
      await client.write(metaPath(tenantId, slug), { custom_metadata: custom });
      const keep = new Set([version, ...Object.keys(grace).map(Number)]);
      const obsolete = Object.entries(meta?.versions ?? {})
        .filter(([v, info]) => !keep.has(Number(v)) && !info.destroyed)
        .map(([v]) => Number(v));
      if (obsolete.length > 0) {
        await client.write(`${mount}/destroy/${folder(tenantId)}/${slug}`, { versions: obsolete });
      }
      return storedSecret({ ...fields, credentials }, version, timeOf(written.data?.created_time, clock()));
    }
  };

  // Grace deadlines still running at `now`.
  const pending = (grace: Record<string, number>, now: number): Record<string, number> =>
    Object.fromEntries(Object.entries(grace).filter(([, until]) => typeof until === 'number' && until > now));

  const collision = (name: string) =>
    new AuthSecError(
      'BAD_REQUEST',
      `Service name '${name}' maps to the same Vault path as an existing service of this tenant: choose another name`,
    );

  const backend: VaultSecretBackend = {
    kind: 'vault',

    async write(tenantId, input) {
      checkTenantId(tenantId);
      const checked = checkInput(input);
      const { credentials, ...fields } = checked;
      const slug = serviceSlug(fields.name);
      return operation('write', () =>
        writeVersion(tenantId, slug, (meta) => {
          const owner = meta?.custom_metadata?.[META.name];
          if (meta && owner !== undefined && owner !== fields.name) throw collision(fields.name);
          // A write replaces the service: no earlier version stays readable.
          return { fields, credentials, grace: {} };
        }),
      );
    },

    async read(tenantId, name, readOptions = {}) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const version = checkVersion(readOptions.version);
      const slug = serviceSlug(name);
      return operation('read', async () => {
        if (version !== undefined) {
          const meta = await readMetadata(metaPath(tenantId, slug));
          if (!meta) return undefined;
          const fields = describe(name, slug, meta.custom_metadata);
          if (!fields) return undefined;
          const current = meta.current_version;
          const until = fields.grace[String(version)];
          const withinGrace = typeof until === 'number' && until > clock();
          if (version !== current && !withinGrace) return undefined;
        }
        const secret = await readData(dataPath(tenantId, slug), version);
        if (!secret?.data || !secret.metadata || secret.metadata.deletion_time || secret.metadata.destroyed) {
          return undefined;
        }
        const fields = describe(name, slug, secret.metadata.custom_metadata);
        if (!fields) return undefined;
        const { keys: _keys, grace: _grace, ...described } = fields;
        return storedSecret(
          { ...described, credentials: credentialsOf(secret.data) },
          secret.metadata.version ?? 0,
          timeOf(secret.metadata.created_time, clock()),
        );
      });
    },

    async currentVersion(tenantId, name) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const slug = serviceSlug(name);
      return operation('version', async () => {
        const meta = await readMetadata(metaPath(tenantId, slug));
        if (!meta || !describe(name, slug, meta.custom_metadata)) return undefined;
        const current = meta.current_version;
        return typeof current === 'number' && live(meta, current) ? current : undefined;
      });
    },

    async list(tenantId) {
      checkTenantId(tenantId);
      return operation('list', async () => {
        let keys: string[];
        try {
          const response = (await client.list(`${mount}/metadata/${folder(tenantId)}`)) as {
            data?: { keys?: unknown };
          };
          const raw = response?.data?.keys;
          keys = Array.isArray(raw)
            ? raw.filter((k): k is string => typeof k === 'string' && !k.endsWith('/'))
            : [];
        } catch (error) {
          if (isNotFound(error)) return [];
          throw error;
        }
        const out: ServiceSecretSummary[] = [];
        for (let i = 0; i < keys.length; i += LIST_CONCURRENCY) {
          const batch = keys.slice(i, i + LIST_CONCURRENCY);
          const metas = await Promise.all(batch.map((k) => readMetadata(metaPath(tenantId, k))));
          metas.forEach((meta, j) => {
            const slug = batch[j]!;
            const current = meta?.current_version;
            if (!meta || typeof current !== 'number' || !live(meta, current)) return;
            const name = meta.custom_metadata?.[META.name] ?? slug;
            let fields: ReturnType<typeof describe>;
            try {
              fields = describe(name, slug, meta.custom_metadata);
            } catch {
              logger.error('Vault custom metadata of a service is unreadable; it is left out of the list', {
                tenant: tenantId,
                path: slug,
              });
              return;
            }
            if (!fields) return;
            out.push(secretSummary(fields, fields.keys, current, timeOf(meta.updated_time, clock())));
          });
        }
        return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      });
    },

    async rotate(tenantId, name, credentials, rotateOptions = {}) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const values = checkCredentials(credentials);
      const graceMs = checkGraceMs(rotateOptions.graceMs);
      const slug = serviceSlug(name);
      return operation('rotate', () =>
        writeVersion(tenantId, slug, (meta) => {
          const current = meta?.current_version;
          const described = meta ? describe(name, slug, meta.custom_metadata) : undefined;
          if (!meta || !described || typeof current !== 'number' || !live(meta, current)) {
            throw new AuthSecError('NOT_FOUND', `Unknown service '${name}'`);
          }
          const now = clock();
          const grace = pending(described.grace, now);
          if (graceMs > 0) grace[String(current)] = now + graceMs;
          const { keys: _keys, grace: _grace, ...fields } = described;
          return { fields, credentials: values, grace };
        }),
      );
    },

    async delete(tenantId, name) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const slug = serviceSlug(name);
      return operation('delete', async () => {
        const path = metaPath(tenantId, slug);
        const meta = await readMetadata(path);
        if (!meta || !describe(name, slug, meta.custom_metadata)) return false;
        await client.delete(path);
        return true;
      });
    },

    async close() {
      closed = true;
      if (renewTimer) clearTimeout(renewTimer);
      renewTimer = undefined;
    },
  };
  return backend;
}
