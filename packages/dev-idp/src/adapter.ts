import type { Adapter, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** Milliseconds since the epoch; `Infinity` when the model has no expiry. */
  expiresAt: number;
}

const GRACE_SECONDS = 60;

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * In-memory storage for oidc-provider models, shared by every model adapter of one dev IdP (and kept across
 * `rotateKeys()`, which builds a new provider on the same storage). Expired entries are dropped when read
 * and swept on writes. Nothing survives a restart: this is a development IdP.
 */
export class MemoryStore {
  readonly #entries = new Map<string, Entry>();
  readonly #grants = new Map<string, Set<string>>();
  readonly #uids = new Map<string, string>();
  readonly #userCodes = new Map<string, string>();
  #writes = 0;

  /** The adapter factory to hand to oidc-provider's `adapter` option. */
  readonly factory = (model: string): Adapter => new MemoryAdapter(model, this);

  get(key: string): AdapterPayload | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(model: string, id: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    const key = `${model}:${id}`;
    this.delete(key);
    // Kept a little past expiry (as oidc-provider's own adapter does) so it can still say "expired", not "unknown".
    const expiresAt =
      typeof expiresIn === 'number'
        ? Date.now() + (expiresIn + GRACE_SECONDS) * 1000
        : Number.POSITIVE_INFINITY;
    this.#entries.set(key, { payload, expiresAt });
    if (model === 'Session' && typeof payload.uid === 'string') this.#uids.set(payload.uid, id);
    if (typeof payload.userCode === 'string') this.#userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(model) && typeof payload.grantId === 'string') {
      const members = this.#grants.get(payload.grantId) ?? new Set<string>();
      members.add(key);
      this.#grants.set(payload.grantId, members);
    }
    if (++this.#writes % 500 === 0) this.#sweep();
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    const { payload } = entry;
    const id = key.slice(key.indexOf(':') + 1);
    if (typeof payload.uid === 'string' && this.#uids.get(payload.uid) === id) this.#uids.delete(payload.uid);
    if (typeof payload.userCode === 'string' && this.#userCodes.get(payload.userCode) === id) {
      this.#userCodes.delete(payload.userCode);
    }
    if (typeof payload.grantId === 'string') {
      const members = this.#grants.get(payload.grantId);
      members?.delete(key);
      if (members?.size === 0) this.#grants.delete(payload.grantId);
    }
  }

  idByUid(uid: string): string | undefined {
    return this.#uids.get(uid);
  }

  idByUserCode(userCode: string): string | undefined {
    return this.#userCodes.get(userCode);
  }

  revokeGrant(grantId: string): void {
    for (const key of [...(this.#grants.get(grantId) ?? [])]) this.delete(key);
    this.#grants.delete(grantId);
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.delete(key);
  }
}

class MemoryAdapter implements Adapter {
  readonly #model: string;
  readonly #store: MemoryStore;

  constructor(model: string, store: MemoryStore) {
    this.#model = model;
    this.#store = store;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    this.#store.set(this.#model, id, payload, expiresIn);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#store.get(`${this.#model}:${id}`);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = this.#store.idByUid(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = this.#store.idByUserCode(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id: string): Promise<void> {
    const payload = this.#store.get(`${this.#model}:${id}`);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.#store.delete(`${this.#model}:${id}`);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.#store.revokeGrant(grantId);
  }
}
