/**
 * A Vault test double: a node:http server on 127.0.0.1 that implements the part of HashiCorp Vault's HTTP API
 * the Vault secret backend uses, the way Vault documents it:
 *
 * - every request but AppRole login needs `X-Vault-Token` (an unknown, missing or expired token is 403
 *   `{"errors":["permission denied"]}`); `X-Vault-Namespace` selects a namespace with its own data;
 * - error bodies are `{ "errors": [...] }`; a sealed Vault answers 503 `{"errors":["Vault is sealed"]}`;
 * - KV v2: `GET/POST/DELETE /v1/<mount>/data/<path>` (`data.data`, `data.metadata.version`, `?version=N`,
 *   `options.cas`), `GET/LIST/POST/DELETE /v1/<mount>/metadata/<path>` (LIST also as `GET ?list=true`;
 *   `custom_metadata`, `versions`, `current_version`; Node's HTTP parser refuses the LIST verb itself, so the
 *   fake serves the documented `GET ?list=true` form, which the backend uses), `POST /v1/<mount>/destroy/<path>`,
 *   `POST /v1/<mount>/delete/<path>`; an unknown mount is 404 "no handler for route";
 * - `POST /v1/auth/approle/login`, `GET /v1/auth/token/lookup-self`, `POST /v1/auth/token/renew-self`.
 *
 * Test controls: seal/unseal, a slow mode (delays every response), paths denied to every token (403), a
 * request log (method, path, headers) and login/renewal counters.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the fake received it. */
export interface FakeVaultRequest {
  readonly method: string;
  /** Path without the query, e.g. `/v1/secret/data/authsec/acme/github`. */
  readonly path: string;
  readonly query: string;
  readonly token: string | undefined;
  readonly namespace: string | undefined;
  /** The raw request body (tests only: it may hold values). */
  readonly body: string;
}

interface TokenInfo {
  readonly id: string;
  ttlSeconds: number;
  renewable: boolean;
  /** Real time (ms) when it expires; undefined: never (root). */
  expiresAt: number | undefined;
  readonly policies: string[];
}

interface Version {
  data: Record<string, unknown> | null;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

interface KvEntry {
  versions: Map<number, Version>;
  current_version: number;
  oldest_version: number;
  created_time: string;
  updated_time: string;
  max_versions: number;
  cas_required: boolean;
  delete_version_after: string;
  custom_metadata: Record<string, string> | null;
}

/** Options of {@link startFakeVault}. */
export interface FakeVaultOptions {
  /** Static tokens accepted (no TTL, not renewable: like root tokens). Default `['root-token']`. */
  readonly tokens?: readonly string[];
  /** Tokens with a TTL, renewable. */
  readonly renewableTokens?: readonly { readonly id: string; readonly ttlSeconds: number }[];
  /** The AppRole credentials accepted, and the lease of the tokens it issues. */
  readonly approle?: { readonly roleId: string; readonly secretId: string; readonly leaseSeconds?: number };
  /** KV v2 mounts. Default `['secret']`. */
  readonly mounts?: readonly string[];
}

/** A running fake Vault. */
export interface FakeVault {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Every request received, oldest first. */
  readonly requests: FakeVaultRequest[];
  /** Successful AppRole logins. */
  readonly logins: number;
  /** Successful token renewals. */
  readonly renewals: number;
  seal(): void;
  unseal(): void;
  /** Delays every response by `ms` (0: off). */
  slow(ms: number): void;
  /** Refuses (403) every request whose path starts with `/v1/<pathPrefix>`, for every token. */
  deny(pathPrefix: string): void;
  /** Undoes {@link FakeVault.deny}. */
  allowAll(): void;
  /** Makes a token invalid (as after revocation or expiry). */
  revoke(token: string): void;
  /** The tokens AppRole issued, oldest first. */
  readonly issuedTokens: string[];
  /** The raw stored entry (for assertions), in `namespace` ('' for the root). */
  entry(mount: string, path: string, namespace?: string): KvEntry | undefined;
  /** Everything stored, as text (for canary checks). */
  dump(): string;
  close(): Promise<void>;
}

const now = () => new Date().toISOString();

// A key with no version yet, as Vault creates it on the first data or metadata write.
const emptyEntry = (time: string): KvEntry => ({
  versions: new Map(),
  current_version: 0,
  oldest_version: 0,
  created_time: time,
  updated_time: time,
  max_versions: 0,
  cas_required: false,
  delete_version_after: '0s',
  custom_metadata: null,
});

/** Starts a {@link FakeVault} on 127.0.0.1 and a free port. */
export async function startFakeVault(options: FakeVaultOptions = {}): Promise<FakeVault> {
  const tokens = new Map<string, TokenInfo>();
  for (const id of options.tokens ?? ['root-token']) {
    tokens.set(id, { id, ttlSeconds: 0, renewable: false, expiresAt: undefined, policies: ['root'] });
  }
  for (const t of options.renewableTokens ?? []) {
    tokens.set(t.id, {
      id: t.id,
      ttlSeconds: t.ttlSeconds,
      renewable: true,
      expiresAt: Date.now() + t.ttlSeconds * 1000,
      policies: ['default'],
    });
  }
  const mounts = new Set(options.mounts ?? ['secret']);
  // namespace -> mount -> path -> entry
  const stores = new Map<string, Map<string, Map<string, KvEntry>>>();
  const requests: FakeVaultRequest[] = [];
  const issuedTokens: string[] = [];
  const denied = new Set<string>();
  let sealed = false;
  let delayMs = 0;
  let logins = 0;
  let renewals = 0;

  const store = (namespace: string, mount: string): Map<string, KvEntry> => {
    let byMount = stores.get(namespace);
    if (!byMount) {
      byMount = new Map();
      stores.set(namespace, byMount);
    }
    let entries = byMount.get(mount);
    if (!entries) {
      entries = new Map();
      byMount.set(mount, entries);
    }
    return entries;
  };

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status);
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const errors = (res: ServerResponse, status: number, ...messages: string[]) =>
    send(res, status, { errors: messages });
  const envelope = (fields: Record<string, unknown>) => ({
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    ...fields,
  });

  const versionMetadata = (entry: KvEntry, version: number) => {
    const v = entry.versions.get(version)!;
    return {
      created_time: v.created_time,
      custom_metadata: entry.custom_metadata,
      deletion_time: v.deletion_time,
      destroyed: v.destroyed,
      version,
    };
  };

  const keysUnder = (entries: Map<string, KvEntry>, folder: string): string[] => {
    const prefix = folder === '' ? '' : `${folder.replace(/\/$/, '')}/`;
    const keys = new Set<string>();
    for (const path of entries.keys()) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      keys.add(slash === -1 ? rest : `${rest.slice(0, slash + 1)}`);
    }
    return [...keys].sort();
  };

  const checkCustomMetadata = (custom: unknown): string | undefined => {
    if (custom === null || custom === undefined) return undefined;
    if (typeof custom !== 'object' || Array.isArray(custom))
      return 'custom_metadata must be a map of strings';
    const entries = Object.entries(custom as Record<string, unknown>);
    if (entries.length > 64) return 'payload must contain at most 64 keys';
    for (const [k, v] of entries) {
      if (typeof v !== 'string') return 'custom_metadata values must be strings';
      if (Buffer.byteLength(k) > 128) return `length of key "${k}" is greater than 128 bytes`;
      if (Buffer.byteLength(v) > 512) return `length of value for key "${k}" is greater than 512 bytes`;
    }
    return undefined;
  };

  const handleKv = (
    res: ServerResponse,
    method: string,
    namespace: string,
    mount: string,
    kind: string,
    path: string,
    query: URLSearchParams,
    body: Record<string, unknown>,
  ) => {
    const entries = store(namespace, mount);
    const entry = entries.get(path);
    const route = `${mount}/${kind}/${path}`;
    const list = query.get('list');
    const isList = method === 'LIST' || (method === 'GET' && (list === 'true' || list === '1'));
    if (kind === 'data') {
      if (method === 'GET') {
        const wanted = query.has('version') ? Number(query.get('version')) : (entry?.current_version ?? 0);
        const version = wanted === 0 ? entry?.current_version : wanted;
        const v = version === undefined ? undefined : entry?.versions.get(version);
        if (!entry || !v || version === undefined) return errors(res, 404);
        if (v.destroyed || v.deletion_time) {
          return send(
            res,
            404,
            envelope({ data: { data: null, metadata: versionMetadata(entry, version) } }),
          );
        }
        return send(
          res,
          200,
          envelope({ data: { data: v.data, metadata: versionMetadata(entry, version) } }),
        );
      }
      if (method === 'POST' || method === 'PUT') {
        const data = body.data;
        if (typeof data !== 'object' || data === null || Array.isArray(data)) {
          return errors(res, 400, 'no data provided');
        }
        const cas = (body.options as { cas?: unknown } | undefined)?.cas;
        if (entry?.cas_required && cas === undefined) {
          return errors(res, 400, 'check-and-set parameter required for this call');
        }
        if (cas !== undefined && Number(cas) !== (entry?.current_version ?? 0)) {
          return errors(res, 400, 'check-and-set parameter did not match the current version');
        }
        const time = now();
        const target = entry ?? emptyEntry(time);
        const version = target.current_version + 1;
        target.versions.set(version, {
          data: data as Record<string, unknown>,
          created_time: time,
          deletion_time: '',
          destroyed: false,
        });
        target.current_version = version;
        target.updated_time = time;
        if (target.oldest_version === 0) target.oldest_version = 1;
        // Vault keeps max_versions (default 10) versions per key and permanently deletes older ones.
        const max = target.max_versions > 0 ? target.max_versions : 10;
        for (const v of [...target.versions.keys()].sort((a, b) => a - b)) {
          if (target.versions.size <= max) break;
          target.versions.delete(v);
          target.oldest_version = v + 1;
        }
        entries.set(path, target);
        return send(res, 200, envelope({ data: versionMetadata(target, version) }));
      }
      if (method === 'DELETE') {
        const v = entry?.versions.get(entry.current_version);
        if (v && !v.deletion_time) v.deletion_time = now();
        return send(res, 204);
      }
      return errors(res, 405, '1 error occurred:\n\t* unsupported operation\n\n');
    }
    if (kind === 'metadata') {
      if (isList) {
        const keys = keysUnder(entries, path);
        if (keys.length === 0) return errors(res, 404);
        return send(res, 200, envelope({ data: { keys } }));
      }
      if (method === 'GET') {
        if (!entry) return errors(res, 404);
        const versions: Record<string, unknown> = {};
        for (const [n, v] of entry.versions) {
          versions[String(n)] = {
            created_time: v.created_time,
            deletion_time: v.deletion_time,
            destroyed: v.destroyed,
          };
        }
        return send(
          res,
          200,
          envelope({
            data: {
              cas_required: entry.cas_required,
              created_time: entry.created_time,
              current_version: entry.current_version,
              custom_metadata: entry.custom_metadata,
              delete_version_after: entry.delete_version_after,
              max_versions: entry.max_versions,
              oldest_version: entry.oldest_version,
              updated_time: entry.updated_time,
              versions,
            },
          }),
        );
      }
      if (method === 'POST' || method === 'PUT') {
        const problem = checkCustomMetadata(body.custom_metadata);
        if (problem) return errors(res, 400, problem);
        const time = now();
        const target = entry ?? emptyEntry(time);
        if (typeof body.max_versions === 'number') target.max_versions = body.max_versions;
        if (typeof body.cas_required === 'boolean') target.cas_required = body.cas_required;
        if (typeof body.delete_version_after === 'string')
          target.delete_version_after = body.delete_version_after;
        if (body.custom_metadata !== undefined) {
          target.custom_metadata = { ...(body.custom_metadata as Record<string, string>) };
        }
        target.updated_time = time;
        entries.set(path, target);
        return send(res, 204);
      }
      if (method === 'DELETE') {
        entries.delete(path);
        return send(res, 204);
      }
      return errors(res, 405, '1 error occurred:\n\t* unsupported operation\n\n');
    }
    if ((kind === 'destroy' || kind === 'delete') && (method === 'POST' || method === 'PUT')) {
      const versions = body.versions;
      if (!Array.isArray(versions) || versions.length === 0)
        return errors(res, 400, 'no version number provided');
      for (const n of versions) {
        const v = entry?.versions.get(Number(n));
        if (!v) continue;
        if (kind === 'destroy') {
          v.destroyed = true;
          v.data = null;
        } else if (!v.deletion_time) v.deletion_time = now();
      }
      return send(res, 204);
    }
    return errors(res, 404, `no handler for route "${route}". route entry not found.`);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const url = new URL(req.url ?? '/', 'http://fake-vault');
    const method = (req.method ?? 'GET').toUpperCase();
    const token = req.headers['x-vault-token'] as string | undefined;
    const namespace = (req.headers['x-vault-namespace'] as string | undefined) ?? '';
    requests.push({
      method,
      path: url.pathname,
      query: url.search,
      token,
      namespace: namespace || undefined,
      body: raw,
    });
    if (sealed) return errors(res, 503, 'Vault is sealed');
    let body: Record<string, unknown> = {};
    if (raw.trim() !== '') {
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return errors(res, 400, 'failed to parse JSON input');
      }
    }
    const path = url.pathname;
    if (!path.startsWith('/v1/')) return errors(res, 404);
    const route = path.slice(4);

    if (route === 'auth/approle/login' && method === 'POST') {
      const approle = options.approle;
      if (!approle || body.role_id !== approle.roleId || body.secret_id !== approle.secretId) {
        return errors(res, 400, 'invalid role or secret ID');
      }
      const id = `hvs.approle-${randomUUID()}`;
      const lease = approle.leaseSeconds ?? 3600;
      tokens.set(id, {
        id,
        ttlSeconds: lease,
        renewable: true,
        expiresAt: Date.now() + lease * 1000,
        policies: ['default', 'authsec'],
      });
      issuedTokens.push(id);
      logins++;
      return send(
        res,
        200,
        envelope({
          auth: {
            client_token: id,
            accessor: randomUUID(),
            policies: ['authsec', 'default'],
            token_policies: ['authsec', 'default'],
            metadata: { role_name: 'authsec' },
            lease_duration: lease,
            renewable: true,
            entity_id: randomUUID(),
            token_type: 'service',
            orphan: true,
          },
        }),
      );
    }

    const info = token ? tokens.get(token) : undefined;
    if (!info || (info.expiresAt !== undefined && info.expiresAt <= Date.now())) {
      return errors(res, 403, 'permission denied');
    }
    for (const prefix of denied)
      if (path.startsWith(`/v1/${prefix}`)) return errors(res, 403, 'permission denied');

    if (route === 'auth/token/lookup-self' && method === 'GET') {
      const ttl =
        info.expiresAt === undefined ? 0 : Math.max(0, Math.floor((info.expiresAt - Date.now()) / 1000));
      return send(
        res,
        200,
        envelope({
          data: {
            accessor: 'accessor',
            creation_ttl: info.ttlSeconds,
            display_name: 'token',
            expire_time: info.expiresAt === undefined ? null : new Date(info.expiresAt).toISOString(),
            explicit_max_ttl: 0,
            id: info.id,
            meta: null,
            num_uses: 0,
            orphan: true,
            path: 'auth/token/create',
            policies: info.policies,
            renewable: info.renewable,
            ttl,
            type: 'service',
          },
        }),
      );
    }
    if (route === 'auth/token/renew-self' && (method === 'POST' || method === 'PUT')) {
      if (!info.renewable) return errors(res, 400, 'lease is not renewable');
      const increment = typeof body.increment === 'number' ? body.increment : info.ttlSeconds;
      info.expiresAt = Date.now() + increment * 1000;
      renewals++;
      return send(
        res,
        200,
        envelope({
          auth: {
            client_token: info.id,
            accessor: 'accessor',
            policies: info.policies,
            token_policies: info.policies,
            lease_duration: increment,
            renewable: true,
          },
        }),
      );
    }
    for (const mount of mounts) {
      for (const kind of ['data', 'metadata', 'destroy', 'delete']) {
        const head = `${mount}/${kind}/`;
        const bare = `${mount}/${kind}`;
        if (route.startsWith(head) || route === bare) {
          const sub = route === bare ? '' : route.slice(head.length);
          return handleKv(res, method, namespace, mount, kind, sub, url.searchParams, body);
        }
      }
    }
    return errors(res, 404, `no handler for route "${route}". route entry not found.`);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const respond = () => {
        if (res.destroyed) return;
        try {
          handle(req, res, raw);
        } catch (error) {
          errors(res, 500, String(error));
        }
      };
      if (delayMs > 0) setTimeout(respond, delayMs).unref();
      else respond();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get logins() {
      return logins;
    },
    get renewals() {
      return renewals;
    },
    issuedTokens,
    seal: () => {
      sealed = true;
    },
    unseal: () => {
      sealed = false;
    },
    slow: (ms) => {
      delayMs = ms;
    },
    deny: (prefix) => {
      denied.add(prefix);
    },
    allowAll: () => denied.clear(),
    revoke: (token) => {
      tokens.delete(token);
    },
    entry: (mount, path, namespace = '') => stores.get(namespace)?.get(mount)?.get(path),
    dump: () =>
      JSON.stringify(
        [...stores].map(([ns, byMount]) => [
          ns,
          [...byMount].map(([m, entries]) => [
            m,
            [...entries].map(([p, e]) => [p, { ...e, versions: [...e.versions] }]),
          ]),
        ]),
      ),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
