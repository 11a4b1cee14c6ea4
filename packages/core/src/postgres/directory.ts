import { LRUCache } from 'lru-cache';
import { AuthSecError, isAuthSecError } from '../errors.js';
import { assertDisplaySafe } from '../identifiers.js';
import { createLogger } from '../logger.js';
import type { DirectoryChange, PrincipalDirectory } from '../options.js';
import { compileConditions } from '../policy/conditions.js';
import type { Clock, Logger, Principal } from '../types.js';
import { toDatabaseError } from './sql.js';
import { isIssuerUrl, type Tenancy, type TenantChange } from './tenancy.js';
import type { TenantHandle } from './tenancy-types.js';

/**
 * Database-backed validation of claims ("validated against your tenant database, not just JWT claims").
 *
 * Effective claims of a principal = the token's claims that exist in the tenant's catalog (per kind), plus
 * the bindings of its subject from its issuer, plus the bindings of `group:<g>` for every effective group
 * (transitively: a group binding that grants a group brings that group's bindings too). A person is the pair
 * (issuer, subject): the same `sub` from another trusted issuer is someone else and holds none of the grants.
 * Group grants belong to no issuer. When the tenant names allowed issuers, a token from any other issuer is
 * refused (`TENANT_UNKNOWN`).
 *
 * Caching and staleness: the catalog of each tenant and the bindings of each (tenant, issuer, subject) are cached for
 * `cacheTtlMs`. Every change made through {@link DirectoryAdmin} (in any process) is announced on the master
 * database and drops the affected entries on every replica at once. When changes may have been missed (the
 * listening connection was lost) or the database is found unreachable, every cache is dropped, so from then on
 * each request needs the database and fails closed with `SERVICE_UNAVAILABLE`. While the database is down a
 * warm entry can therefore be served only until the next database contact, which happens at least every
 * tenancy `cacheTtlMs` (1 s by default, the tenant-record check); a cold one never is.
 */

/** One kind of catalog entry. */
export type CatalogKind = 'role' | 'group' | 'scope' | 'resource' | 'permission';

/** Every catalog kind. */
export const CATALOG_KINDS: readonly CatalogKind[] = Object.freeze([
  'role',
  'group',
  'scope',
  'resource',
  'permission',
]);

/** One entry of a tenant's catalog. */
export interface CatalogEntry {
  readonly kind: CatalogKind;
  readonly name: string;
  readonly createdAt: Date;
}

/** One grant of a catalog entry to a subject (`sub` from an issuer) or to a group (`group:<name>`). */
export interface Binding {
  readonly subject: string;
  /** The issuer of `subject`; `undefined` for a group grant, which holds whatever the issuer. */
  readonly issuer: string | undefined;
  readonly kind: CatalogKind;
  readonly value: string;
  readonly createdAt: Date;
}

/** Values to grant or revoke, by principal field. */
export interface DirectoryGrants {
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly resources?: readonly string[];
  /** `resource:action`. */
  readonly permissions?: readonly string[];
}

/** Whose grants: the issuer of a person's subject. */
export interface SubjectOptions {
  /**
   * The issuer of the subject, exactly as its tokens carry it in `iss`. Required for a person's `sub` (grants
   * are bound to (issuer, subject), so the same `sub` from another issuer gets none of them); refused for
   * `group:<name>`, whose grants hold whatever the issuer. For {@link DirectoryAdmin.listBindings}, optional:
   * absent lists the subject under every issuer.
   */
  readonly issuer?: string;
}

/** A tenant's own conditions on one tool (`authsec policy`). */
export interface ToolPolicy {
  readonly tool: string;
  /** CEL expressions, each of which must hold (ANDed with the tool's own `when`). */
  readonly conditions: readonly string[];
  readonly updatedAt: Date;
}

/**
 * Administration of a tenant's catalog and bindings (used by the `authsec` command). Works on disabled tenants
 * too; an unknown tenant is `TENANT_UNKNOWN`, a malformed name, subject or issuer `BAD_REQUEST` (so is a
 * person's subject without its issuer). Every change is announced to every replica.
 */
export interface DirectoryAdmin {
  /** Adds a catalog entry. Returns `false` when it already existed. */
  addCatalog(tenantId: string, kind: CatalogKind, name: string): Promise<boolean>;
  /**
   * Removes a catalog entry and every binding of it (for a group, also the bindings granted to `group:<name>`).
   * Returns `false` when there was none.
   */
  removeCatalog(tenantId: string, kind: CatalogKind, name: string): Promise<boolean>;
  /** The catalog, ordered by kind and name. */
  listCatalog(tenantId: string, kind?: CatalogKind): Promise<CatalogEntry[]>;
  /**
   * Grants catalog entries to a subject (`sub` of `options.issuer`) or a group (`group:<name>`, an existing
   * group). A value that is not in the catalog is `BAD_REQUEST`, and nothing is granted. Returns how many
   * bindings are new.
   */
  grant(
    tenantId: string,
    subject: string,
    grants: DirectoryGrants,
    options?: SubjectOptions,
  ): Promise<number>;
  /** Removes bindings of a subject (of `options.issuer`) or a group. Returns how many existed. */
  revoke(
    tenantId: string,
    subject: string,
    grants: DirectoryGrants,
    options?: SubjectOptions,
  ): Promise<number>;
  /**
   * Bindings of one subject (of one issuer, with `options.issuer`), or of the whole tenant, ordered by subject,
   * issuer, kind and value.
   */
  listBindings(tenantId: string, subject?: string, options?: SubjectOptions): Promise<Binding[]>;
  /**
   * Sets the tenant's conditions on `tool` (replacing any before): CEL expressions as in a requirement's `when`,
   * checked with the same compiler (a bad one is `BAD_REQUEST` naming it, and nothing is stored). They are
   * ANDed with the tool's own conditions on every replica within a second. Returns `false` when they were
   * already exactly these.
   */
  setToolConditions(tenantId: string, tool: string, conditions: readonly string[]): Promise<boolean>;
  /** Removes the tenant's conditions on `tool`. Returns `false` when it had none. */
  removeToolConditions(tenantId: string, tool: string): Promise<boolean>;
  /** The tenant's tool conditions (of one tool, with `tool`), ordered by tool. */
  listToolConditions(tenantId: string, tool?: string): Promise<ToolPolicy[]>;
}

/** Options of {@link createPostgresDirectory}. */
export interface PostgresDirectoryOptions {
  /** The tenant registry and router. */
  readonly tenancy: Tenancy;
  /**
   * Longest time a cached catalog or binding set is used, ms. Changes reach every replica at once through
   * notifications; this bounds staleness only when a notification is lost without the listener noticing.
   * Default 30000.
   */
  readonly cacheTtlMs?: number;
  /** Most (tenant, issuer, subject) binding sets cached. Default 10000. */
  readonly maxSubjects?: number;
  /** Most tenant catalogs cached. Default 1000. */
  readonly maxTenants?: number;
  /** Close the tenancy when the directory is closed. Default `false` (the caller closes it). */
  readonly closeTenancy?: boolean;
  /** Logger. Default: JSON lines on stderr. */
  readonly logger?: Logger;
  /** Clock (ms). Default `Date.now`. */
  readonly clock?: Clock;
}

/** A {@link PrincipalDirectory} over the tenant databases, with its administration. */
export interface PostgresDirectory extends PrincipalDirectory {
  /** Catalog and binding administration. */
  readonly admin: DirectoryAdmin;
  /**
   * Drops this process's cached entries of a tenant: all of them, one subject's bindings under every issuer,
   * or (with `issuer`) under that issuer only.
   */
  invalidate(tenantId: string, subject?: string, issuer?: string): void;
  /** The tenant's own conditions on its tools, by tool (see {@link DirectoryAdmin.setToolConditions}); cached. */
  toolConditions(principal: Principal): Promise<ReadonlyMap<string, readonly string[]>>;
  /** Resolves when the master database answers; `SERVICE_UNAVAILABLE` otherwise (for readiness probes). */
  check(): Promise<void>;
  /** Stops listening for changes (and closes the tenancy when `closeTenancy`). */
  close(): Promise<void>;
}

const KIND_OF_FIELD = {
  roles: 'role',
  groups: 'group',
  scopes: 'scope',
  resources: 'resource',
  permissions: 'permission',
} as const satisfies Record<keyof DirectoryGrants, CatalogKind>;

type Field = keyof typeof KIND_OF_FIELD;
const FIELDS = Object.keys(KIND_OF_FIELD) as Field[];

const GROUP_PREFIX = 'group:';
// No whitespace, no control characters, 1..128 code points: the same rule as the catalog table's CHECK.
const NAME_PATTERN = /^[^\s\p{Cc}]{1,128}$/u;
const PERMISSION_PATTERN = /^[^:\s\p{Cc}]+:[^:\s\p{Cc}]+$/u;
const SUBJECT_PATTERN = /^[^\p{Cc}]{1,255}$/u;

type Catalog = ReadonlyMap<CatalogKind, ReadonlySet<string>>;
type SubjectBindings = ReadonlyMap<CatalogKind, readonly string[]>;

interface Cached<T> {
  readonly value: T;
  readonly expiresAt: number;
}

function isCatalogKind(kind: unknown): kind is CatalogKind {
  return typeof kind === 'string' && (CATALOG_KINDS as readonly string[]).includes(kind);
}

function badRequest(message: string, tenantId: string, extra: Record<string, unknown> = {}): AuthSecError {
  return new AuthSecError('BAD_REQUEST', message, { details: { tenant: tenantId, ...extra } });
}

function checkName(tenantId: string, kind: CatalogKind, name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw badRequest(
      `Invalid ${kind} name ${JSON.stringify(String(name).slice(0, 60))} in tenant '${tenantId}': 1 to 128 characters, no spaces or control characters`,
      tenantId,
    );
  }
  if (kind === 'permission' && !PERMISSION_PATTERN.test(name)) {
    throw badRequest(
      `Invalid permission ${JSON.stringify(name)} in tenant '${tenantId}': resource:action expected`,
      tenantId,
    );
  }
  return name;
}

function checkSubject(tenantId: string, subject: unknown): string {
  if (typeof subject !== 'string' || !SUBJECT_PATTERN.test(subject)) {
    throw badRequest(
      `Invalid subject in tenant '${tenantId}': 1 to 255 characters, no control characters`,
      tenantId,
    );
  }
  if (subject.startsWith(GROUP_PREFIX)) checkName(tenantId, 'group', subject.slice(GROUP_PREFIX.length));
  return subject;
}

/**
 * The stored issuer of a subject's bindings: the checked `options.issuer` for a person, `''` for a group.
 * With `optional`, a person's issuer may be absent (`undefined`: every issuer).
 */
function checkIssuer(
  tenantId: string,
  subject: string,
  options: SubjectOptions | undefined,
  optional = false,
): string | undefined {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError('options must be an object');
  }
  const issuer = options?.issuer;
  if (subject.startsWith(GROUP_PREFIX)) {
    if (issuer !== undefined) {
      throw badRequest(
        `Grants to ${subject} belong to no issuer: give no issuer for a group in tenant '${tenantId}'`,
        tenantId,
      );
    }
    return '';
  }
  if (issuer === undefined) {
    if (optional) return undefined;
    throw badRequest(
      `The issuer of subject '${subject.slice(0, 60)}' is required in tenant '${tenantId}': grants are bound to (issuer, subject)`,
      tenantId,
    );
  }
  if (!isIssuerUrl(issuer)) {
    throw badRequest(
      `Invalid issuer in tenant '${tenantId}': an http(s) URL without spaces, at most 2048 characters, exactly as tokens carry it in iss`,
      tenantId,
    );
  }
  return issuer;
}

function checkTool(tenantId: string, tool: unknown): string {
  if (typeof tool !== 'string' || !NAME_PATTERN.test(tool)) {
    throw badRequest(
      `Invalid tool name ${JSON.stringify(String(tool).slice(0, 60))} in tenant '${tenantId}': 1 to 128 characters, no spaces or control characters`,
      tenantId,
    );
  }
  assertDisplaySafe(tool, 'Invalid tool name', 'BAD_REQUEST', { tenant: tenantId });
  return tool;
}

/** A tenant's conditions, compiled as a requirement's `when` would be: what cannot run is never stored. */
function checkConditions(tenantId: string, tool: string, conditions: unknown): string[] {
  if (!Array.isArray(conditions) || conditions.length === 0)
    throw badRequest(
      `Conditions of tool '${tool}' in tenant '${tenantId}': at least one is required`,
      tenantId,
    );
  try {
    return compileConditions(conditions, tool).map((c) => c.expression);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw badRequest(`Conditions of tool '${tool}' in tenant '${tenantId}': ${error.message}`, tenantId);
  }
}

function checkKind(tenantId: string, kind: unknown): CatalogKind {
  if (!isCatalogKind(kind)) {
    throw badRequest(`Unknown catalog kind '${String(kind)}': ${CATALOG_KINDS.join(', ')}`, tenantId);
  }
  return kind;
}

/** Flattens grants into parallel (kind, value) arrays, validated and deduplicated. */
function flattenGrants(
  tenantId: string,
  grants: DirectoryGrants,
): { kinds: CatalogKind[]; values: string[] } {
  if (typeof grants !== 'object' || grants === null) throw badRequest('Grants object required', tenantId);
  for (const key of Object.keys(grants)) {
    if (!(key in KIND_OF_FIELD)) throw badRequest(`Unknown grant field '${key}'`, tenantId);
  }
  const seen = new Set<string>();
  const kinds: CatalogKind[] = [];
  const values: string[] = [];
  for (const field of FIELDS) {
    const list = grants[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw badRequest(`${field}: a list of names is required`, tenantId);
    const kind = KIND_OF_FIELD[field];
    for (const value of list) {
      checkName(tenantId, kind, value);
      const key = `${kind}\u0000${value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      kinds.push(kind);
      values.push(value);
    }
  }
  if (kinds.length === 0) throw badRequest('Nothing to grant or revoke: give at least one value', tenantId);
  return { kinds, values };
}

/** A person is (issuer, subject); a group's issuer is `''`. */
interface SubjectRef {
  readonly issuer: string;
  readonly subject: string;
}

function subjectKey(tenantId: string, subject: string, issuer: string): string {
  return `${tenantId}\u0000${subject}\u0000${issuer}`;
}

/**
 * Creates the database-backed {@link PrincipalDirectory}. Give it to `createAuthSec({ directory })`: every
 * authenticated principal then carries its effective claims, tokens of unknown or disabled tenants are refused
 * (`TENANT_UNKNOWN`), and an unreachable database refuses the request (`SERVICE_UNAVAILABLE`), never grants.
 */
export function createPostgresDirectory(options: PostgresDirectoryOptions): PostgresDirectory {
  if (typeof options !== 'object' || options === null || !options.tenancy) {
    throw new TypeError('createPostgresDirectory: options.tenancy is required');
  }
  const { tenancy } = options;
  const cacheTtlMs = options.cacheTtlMs ?? 30_000;
  if (!Number.isFinite(cacheTtlMs) || cacheTtlMs < 0) {
    throw new AuthSecError('CONFIG_INVALID', 'cacheTtlMs: a number >= 0 is required');
  }
  const maxSubjects = options.maxSubjects ?? 10_000;
  const maxTenants = options.maxTenants ?? 1000;
  for (const [name, value] of [
    ['maxSubjects', maxSubjects],
    ['maxTenants', maxTenants],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new AuthSecError('CONFIG_INVALID', `${name}: a positive integer is required`);
    }
  }
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? Date.now;

  const catalogs = new LRUCache<string, Cached<Catalog>>({ max: maxTenants });
  const policies = new LRUCache<string, Cached<ReadonlyMap<string, readonly string[]>>>({ max: maxTenants });
  const bindings = new LRUCache<string, Cached<SubjectBindings>>({ max: maxSubjects });
  // Bumped by every invalidation. A load that started before an invalidation does not store its (possibly
  // stale) result, so a change that lands while a query is in flight is never undone by that query.
  let version = 0;
  let warnedGroupSubject = false;

  const dropPrefix = (prefix: string) => {
    for (const key of [...bindings.keys()]) if (key.startsWith(prefix)) bindings.delete(key);
  };
  const dropTenant = (tenantId: string) => {
    catalogs.delete(tenantId);
    policies.delete(tenantId);
    dropPrefix(`${tenantId}\u0000`);
  };

  const invalidate = (tenantId: string, subject?: string, issuer?: string) => {
    version++;
    if (subject === undefined) dropTenant(tenantId);
    else if (subject.startsWith(GROUP_PREFIX)) bindings.delete(subjectKey(tenantId, subject, ''));
    else if (issuer !== undefined) bindings.delete(subjectKey(tenantId, subject, issuer));
    else dropPrefix(`${tenantId}\u0000${subject}\u0000`);
  };

  const listeners = new Set<(change: DirectoryChange) => void>();
  const announce = (change: DirectoryChange) => {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        logger.error('A directory change listener failed', { cause: String(error) });
      }
    }
  };

  const dropAll = () => {
    version++;
    catalogs.clear();
    policies.clear();
    bindings.clear();
    announce({ tenantId: null, subject: null });
  };

  const onChange = (change: TenantChange) => {
    if (change.kind === 'binding' && change.subject !== null) {
      invalidate(change.tenantId, change.subject, change.issuer ?? undefined);
    } else invalidate(change.tenantId);
    announce({ tenantId: change.tenantId, subject: change.kind === 'binding' ? change.subject : null });
  };
  const unsubscribe = tenancy.subscribe(onChange, dropAll);

  /**
   * A per-tenant value through `cache`: the cached one while fresh, else `load`ed, and kept only when no
   * invalidation happened meanwhile (a change that lands while the query is in flight is never undone by it).
   */
  const perTenant = async <T>(
    cache: LRUCache<string, Cached<T>>,
    handle: TenantHandle,
    load: () => Promise<T>,
  ): Promise<T> => {
    const tenantId = handle.tenant.id;
    const hit = cache.get(tenantId);
    const now = clock();
    if (hit && hit.expiresAt > now) return hit.value;
    const before = version;
    const value = await load();
    if (before === version) cache.set(tenantId, { value, expiresAt: now + cacheTtlMs });
    return value;
  };

  const loadCatalog = (handle: TenantHandle): Promise<Catalog> =>
    perTenant(catalogs, handle, async () => {
      const r = await handle.sql.query<{ kind: CatalogKind; name: string }>(
        `SELECT kind, name FROM ${handle.schema}.catalog`,
      );
      const catalog = new Map<CatalogKind, Set<string>>(CATALOG_KINDS.map((k) => [k, new Set<string>()]));
      for (const row of r.rows) catalog.get(row.kind)?.add(row.name);
      return catalog;
    });

  const loadPolicies = (handle: TenantHandle): Promise<ReadonlyMap<string, readonly string[]>> =>
    perTenant(policies, handle, async () => {
      const r = await handle.sql.query<{ tool: string; conditions: string[] }>(
        `SELECT tool, conditions FROM ${handle.schema}.tool_policies`,
      );
      return new Map(r.rows.map((row) => [row.tool, Object.freeze([...row.conditions])]));
    });

  const loadBindings = async (
    handle: TenantHandle,
    subjects: readonly SubjectRef[],
  ): Promise<SubjectBindings[]> => {
    const tenantId = handle.tenant.id;
    const now = clock();
    const out = new Map<string, SubjectBindings>();
    const missing: SubjectRef[] = [];
    for (const ref of subjects) {
      const key = subjectKey(tenantId, ref.subject, ref.issuer);
      const hit = bindings.get(key);
      if (hit && hit.expiresAt > now) out.set(key, hit.value);
      else missing.push(ref);
    }
    if (missing.length > 0) {
      const before = version;
      const r = await handle.sql.query<{ issuer: string; subject: string; kind: CatalogKind; value: string }>(
        `SELECT b.issuer, b.subject, b.kind, b.value FROM ${handle.schema}.bindings b
         JOIN unnest($1::text[], $2::text[]) AS x(issuer, subject) ON b.issuer = x.issuer AND b.subject = x.subject
         ORDER BY b.issuer, b.subject, b.kind, b.created_at, b.value`,
        [missing.map((m) => m.issuer), missing.map((m) => m.subject)],
      );
      const loaded = new Map<string, Map<CatalogKind, string[]>>(
        missing.map((m) => [subjectKey(tenantId, m.subject, m.issuer), new Map()]),
      );
      for (const row of r.rows) {
        const byKind = loaded.get(subjectKey(tenantId, row.subject, row.issuer));
        if (!byKind) continue;
        const list = byKind.get(row.kind) ?? [];
        list.push(row.value);
        byKind.set(row.kind, list);
      }
      for (const [key, value] of loaded) {
        out.set(key, value);
        if (before === version) bindings.set(key, { value, expiresAt: now + cacheTtlMs });
      }
    }
    return subjects.map((ref) => out.get(subjectKey(tenantId, ref.subject, ref.issuer)) ?? new Map());
  };

  const memo = new WeakMap<Principal, { value: Principal; version: number; expiresAt: number }>();
  const memoTtlMs = Math.min(1000, cacheTtlMs);

  const effective = async (principal: Principal): Promise<Principal> => {
    // The tenant's allowed issuers are checked with its registry row, and cached with it.
    const handle = await tenancy.handle(principal.tenantId, { issuer: principal.issuer });
    const catalog = await loadCatalog(handle);
    const sets = new Map<CatalogKind, Set<string>>();
    for (const field of FIELDS) {
      const kind = KIND_OF_FIELD[field];
      const known = catalog.get(kind) ?? new Set<string>();
      const claimed = Array.isArray(principal[field]) ? principal[field] : [];
      sets.set(kind, new Set(claimed.filter((v) => typeof v === 'string' && known.has(v))));
    }
    const groups = sets.get('group') as Set<string>;
    const add = (b: SubjectBindings) => {
      for (const [kind, values] of b) for (const v of values) sets.get(kind)?.add(v);
    };

    // A subject spelled like a group binding could otherwise inherit that group's grants.
    const ownSubject = !principal.subject.startsWith(GROUP_PREFIX);
    if (!ownSubject && !warnedGroupSubject) {
      warnedGroupSubject = true;
      logger.warn('A token subject starts with "group:": it receives no subject bindings', {
        tenant: principal.tenantId,
      });
    }
    const visited = new Set<string>();
    const groupRefs = () =>
      [...groups]
        .map((g) => `${GROUP_PREFIX}${g}`)
        .filter((s) => !visited.has(s))
        .map((subject) => ({ issuer: '', subject }));
    let pending: SubjectRef[] = [
      ...(ownSubject ? [{ issuer: principal.issuer, subject: principal.subject }] : []),
      ...groupRefs(),
    ];
    while (pending.length > 0) {
      for (const ref of pending) if (ref.issuer === '') visited.add(ref.subject);
      const loaded = await loadBindings(handle, pending);
      for (const b of loaded) add(b);
      pending = groupRefs();
    }

    const list = (kind: CatalogKind) => Object.freeze([...(sets.get(kind) ?? [])]);
    return Object.freeze({
      ...principal,
      roles: list('role'),
      groups: list('group'),
      scopes: list('scope'),
      resources: list('resource'),
      permissions: list('permission'),
    });
  };

  const failure = (error: unknown, tenantId: string): AuthSecError => {
    const err = isAuthSecError(error) ? error : toDatabaseError(error, `database of tenant '${tenantId}'`);
    if (err.code === 'SERVICE_UNAVAILABLE') dropAll();
    return err;
  };

  const adminHandle = async (tenantId: string): Promise<TenantHandle> => {
    if (typeof tenantId !== 'string') throw new TypeError('tenantId must be a string');
    return tenancy.handle(tenantId, { allowDisabled: true });
  };

  // Applied here at once, announced to every other replica (and to this one again, harmlessly).
  const changed = async (
    tenantId: string,
    subject: string | null,
    kind: 'catalog' | 'binding',
    issuer = '',
  ) => {
    invalidate(tenantId, subject ?? undefined, issuer);
    try {
      await tenancy.publish({ tenantId, subject, kind, ...(issuer === '' ? {} : { issuer }) });
    } catch (error) {
      throw new AuthSecError(
        'SERVICE_UNAVAILABLE',
        `The change to tenant '${tenantId}' was saved, but other replicas could not be notified: they apply it when their cache entries expire`,
        { cause: error, details: { tenant: tenantId, committed: true } },
      );
    }
  };

  const run = async <T>(tenantId: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw failure(error, tenantId);
    }
  };

  const admin: DirectoryAdmin = {
    addCatalog: (tenantId, kind, name) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkKind(tenantId, kind);
        checkName(tenantId, kind, name);
        assertDisplaySafe(name, `Invalid ${kind} name`, 'BAD_REQUEST', { tenant: tenantId });
        const r = await h.sql.query(
          `INSERT INTO ${h.schema}.catalog (kind, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [kind, name],
        );
        if (r.rowCount > 0) await changed(tenantId, null, 'catalog');
        return r.rowCount > 0;
      }),

    removeCatalog: (tenantId, kind, name) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkKind(tenantId, kind);
        checkName(tenantId, kind, name);
        const removed = await h.sql.transaction(async (tx) => {
          const r = await tx.query(`DELETE FROM ${h.schema}.catalog WHERE kind = $1 AND name = $2`, [
            kind,
            name,
          ]);
          if (kind === 'group') {
            await tx.query(`DELETE FROM ${h.schema}.bindings WHERE subject = $1`, [`${GROUP_PREFIX}${name}`]);
          }
          return r.rowCount > 0;
        });
        if (removed) await changed(tenantId, null, 'catalog');
        return removed;
      }),

    listCatalog: (tenantId, kind) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        if (kind !== undefined) checkKind(tenantId, kind);
        const r = await h.sql.query<{ kind: CatalogKind; name: string; created_at: Date | string }>(
          `SELECT kind, name, created_at FROM ${h.schema}.catalog WHERE ($1::text IS NULL OR kind = $1)
           ORDER BY kind, name`,
          [kind ?? null],
        );
        return r.rows.map((row) =>
          Object.freeze({ kind: row.kind, name: row.name, createdAt: new Date(row.created_at) }),
        );
      }),

    grant: (tenantId, subject, grants, options) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkSubject(tenantId, subject);
        assertDisplaySafe(subject, 'Invalid subject', 'BAD_REQUEST', { tenant: tenantId });
        const issuer = checkIssuer(tenantId, subject, options) as string;
        const { kinds, values } = flattenGrants(tenantId, grants);
        const needKinds = [...kinds];
        const needValues = [...values];
        if (subject.startsWith(GROUP_PREFIX)) {
          needKinds.push('group');
          needValues.push(subject.slice(GROUP_PREFIX.length));
        }
        const added = await h.sql.transaction(async (tx) => {
          // Lock the catalog rows so that a concurrent removal cannot slip between this check and the insert.
          const found = await tx.query<{ kind: string; name: string }>(
            `SELECT c.kind, c.name FROM ${h.schema}.catalog c
             JOIN unnest($1::text[], $2::text[]) AS x(kind, name) ON c.kind = x.kind AND c.name = x.name
             FOR KEY SHARE OF c`,
            [needKinds, needValues],
          );
          const present = new Set(found.rows.map((r) => `${r.kind}\u0000${r.name}`));
          const missing = needKinds
            .map((k, i) => `${k}\u0000${needValues[i]}`)
            .filter((key) => !present.has(key))
            .map((key) => key.replace('\u0000', ' '));
          if (missing.length > 0) {
            throw badRequest(`Not in the catalog of tenant '${tenantId}': ${missing.join(', ')}`, tenantId, {
              missing,
            });
          }
          const r = await tx.query(
            `INSERT INTO ${h.schema}.bindings (issuer, subject, kind, value)
             SELECT $1, $2, x.kind, x.value FROM unnest($3::text[], $4::text[]) AS x(kind, value)
             ON CONFLICT DO NOTHING`,
            [issuer, subject, kinds, values],
          );
          return r.rowCount;
        });
        if (added > 0) await changed(tenantId, subject, 'binding', issuer);
        return added;
      }),

    revoke: (tenantId, subject, grants, options) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkSubject(tenantId, subject);
        const issuer = checkIssuer(tenantId, subject, options) as string;
        const { kinds, values } = flattenGrants(tenantId, grants);
        const r = await h.sql.query(
          `DELETE FROM ${h.schema}.bindings b USING unnest($3::text[], $4::text[]) AS x(kind, value)
           WHERE b.issuer = $1 AND b.subject = $2 AND b.kind = x.kind AND b.value = x.value`,
          [issuer, subject, kinds, values],
        );
        if (r.rowCount > 0) await changed(tenantId, subject, 'binding', issuer);
        return r.rowCount;
      }),

    setToolConditions: (tenantId, tool, conditions) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkTool(tenantId, tool);
        const checked = checkConditions(tenantId, tool, conditions);
        const r = await h.sql.query(
          `INSERT INTO ${h.schema}.tool_policies AS p (tool, conditions) VALUES ($1, $2)
           ON CONFLICT (tool) DO UPDATE SET conditions = EXCLUDED.conditions, updated_at = now()
           WHERE p.conditions IS DISTINCT FROM EXCLUDED.conditions`,
          [tool, checked],
        );
        if (r.rowCount > 0) await changed(tenantId, null, 'catalog');
        return r.rowCount > 0;
      }),

    removeToolConditions: (tenantId, tool) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        checkTool(tenantId, tool);
        const r = await h.sql.query(`DELETE FROM ${h.schema}.tool_policies WHERE tool = $1`, [tool]);
        if (r.rowCount > 0) await changed(tenantId, null, 'catalog');
        return r.rowCount > 0;
      }),

    listToolConditions: (tenantId, tool) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        if (tool !== undefined) checkTool(tenantId, tool);
        const r = await h.sql.query<{ tool: string; conditions: string[]; updated_at: Date | string }>(
          `SELECT tool, conditions, updated_at FROM ${h.schema}.tool_policies
           WHERE ($1::text IS NULL OR tool = $1) ORDER BY tool`,
          [tool ?? null],
        );
        return r.rows.map((row) =>
          Object.freeze({
            tool: row.tool,
            conditions: Object.freeze([...row.conditions]),
            updatedAt: new Date(row.updated_at),
          }),
        );
      }),

    listBindings: (tenantId, subject, options) =>
      run(tenantId, async () => {
        const h = await adminHandle(tenantId);
        let issuer: string | undefined;
        if (subject !== undefined) {
          checkSubject(tenantId, subject);
          issuer = checkIssuer(tenantId, subject, options, true);
        } else if (options?.issuer !== undefined) {
          issuer = checkIssuer(tenantId, '', options);
        }
        const r = await h.sql.query<{
          issuer: string;
          subject: string;
          kind: CatalogKind;
          value: string;
          created_at: Date | string;
        }>(
          `SELECT issuer, subject, kind, value, created_at FROM ${h.schema}.bindings
           WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR issuer = $2)
           ORDER BY subject, issuer, kind, value`,
          [subject ?? null, issuer ?? null],
        );
        return r.rows.map((row) =>
          Object.freeze({
            subject: row.subject,
            issuer: row.issuer === '' ? undefined : row.issuer,
            kind: row.kind,
            value: row.value,
            createdAt: new Date(row.created_at),
          }),
        );
      }),
  };

  let closed = false;
  return {
    admin,
    invalidate,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async check() {
      if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory is closed');
      try {
        await tenancy.master.query('SELECT 1');
      } catch (cause) {
        // Whatever went wrong, the directory cannot answer now: that is all a readiness probe needs to know.
        throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory database is unavailable', { cause });
      }
    },
    async resolve(principal) {
      if (typeof principal !== 'object' || principal === null)
        throw new TypeError('resolve: principal required');
      if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory is closed');
      // The verified-token cache hands back the same frozen principal for a repeated token, so its effective
      // form can be reused until anything changes (version) and at most for a second, the same bound as the
      // tenant registry cache: a disabled tenant is still noticed as fast as without this memo.
      const now = clock();
      const hit = memo.get(principal);
      if (hit !== undefined && hit.version === version && hit.expiresAt > now) return hit.value;
      const before = version;
      try {
        const value = await effective(principal);
        if (before === version && Object.isFrozen(principal)) {
          memo.set(principal, { value, version: before, expiresAt: now + memoTtlMs });
        }
        return value;
      } catch (error) {
        throw failure(error, String(principal.tenantId));
      }
    },
    async toolConditions(principal) {
      if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory is closed');
      try {
        const handle = await tenancy.handle(principal.tenantId, { issuer: principal.issuer });
        return await loadPolicies(handle);
      } catch (error) {
        throw failure(error, String(principal.tenantId));
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      listeners.clear();
      dropAll();
      if (options.closeTenancy) await tenancy.close();
    },
  };
}
