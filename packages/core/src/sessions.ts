import { createHash, randomBytes } from 'node:crypto';
import { constantTimeEqual, open, seal } from './crypto.js';
import type { MasterKeyRing } from './env.js';
import { AuthSecError } from './errors.js';
import { silentLogger } from './logger.js';
import type { Clock, Logger } from './types.js';
import { isValidTenantId } from './types.js';

/**
 * Login sessions for the tool-based OAuth login (authorization code + PKCE).
 *
 * A login starts as a *pending* session (PKCE verifier, nonce, redirect URI, the binding of whoever started
 * it), is *consumed* once by the callback that presents its `state`, and becomes *authenticated* (subject,
 * tenant, tokens) until it expires or is logged out. Whatever the store:
 * - session ids and states are 256-bit random values; only their SHA-256 hashes are stored, and lookups go
 *   by hash, so a copy of the store's data does not hand out live sessions;
 * - tokens (purpose `session-tokens`) and the PKCE verifier, nonce and redirect URI (purpose
 *   `session-pending`) are sealed with AES-256-GCM under the master key ring, bound to the session's id hash;
 * - the binding (connection id, MCP session) is stored hashed, and a session asked for with another binding
 *   reads as not found;
 * - lifetimes are clamped to the configured maxima: the caller cannot extend them;
 * - a state is single-use, even with several replicas racing (Postgres store).
 *
 * This module has no database import; the Postgres store lives in `@authsec/core/postgres`.
 */

/** The status a session reads as. A pending or authenticated session past its expiry reads as `'expired'`. */
export type SessionStatus = 'pending' | 'authenticated' | 'logged_out' | 'expired';

/** What {@link SessionStore.createPending} needs to start a login. */
export interface PendingSessionInput {
  /** The PKCE code verifier (RFC 7636). Sealed at rest. */
  readonly codeVerifier: string;
  /** The OIDC nonce sent in the authorization request. Sealed at rest. */
  readonly nonce: string;
  /** The redirect URI of this login (the loopback callback). Sealed at rest. */
  readonly redirectUri: string;
  /**
   * Who started the login: a connection id, or an MCP session id plus client binding. Opaque; stored only as
   * a SHA-256 hash. Limits per binding apply, and lookups that name another binding do not see the session.
   */
  readonly binding: string;
  /** Lifetime of the pending login, ms. Default and maximum: the store's `pendingTtlMs`. */
  readonly ttlMs?: number;
}

/** A login just started. `sessionId` goes to the client; `state` goes into the authorization URL. */
export interface CreatedPendingSession {
  /** 256-bit random, base64url (43 characters). The only copy: the store keeps its hash. */
  readonly sessionId: string;
  /** A separate 256-bit random value for the OAuth `state` parameter, base64url. Single-use. */
  readonly state: string;
  /** When the pending login expires, ms since the epoch. */
  readonly expiresAt: number;
}

/** The secrets of a pending login, returned once by {@link SessionStore.consumePending}. */
export interface PendingSession {
  /** The PKCE code verifier to send with the code exchange. */
  readonly codeVerifier: string;
  /** The nonce the ID token must carry. */
  readonly nonce: string;
  /** The redirect URI the code exchange must repeat. */
  readonly redirectUri: string;
  /** When the pending login expires, ms since the epoch (the code exchange must finish before). */
  readonly expiresAt: number;
}

/** What {@link SessionStore.authenticate} records once the code has been exchanged and the tokens verified. */
export interface AuthenticatedSessionInput {
  /** The verified subject (`sub`). The session stays bound to it for life, across token refreshes. */
  readonly subject: string;
  /**
   * The verified issuer (`iss`, the principal's `issuer`). With `subject` it names the person: the same `sub`
   * from another issuer is someone else, with its own per-subject limit and listing. Give it always; absent
   * only for callers that predate it (such sessions are counted apart from every issuer's).
   */
  readonly issuer?: string;
  /** The verified tenant id (must match `TENANT_ID_PATTERN`). */
  readonly tenantId: string;
  /** Sealed at rest. */
  readonly accessToken: string;
  /** Sealed at rest. Without one, the session ends when the access token does. */
  readonly refreshToken?: string;
  /** Sealed at rest. */
  readonly idToken?: string;
  /** Access token expiry, ms since the epoch. */
  readonly expiresAt: number;
  /** Wanted session lifetime, ms. Clamped to the store's `sessionTtlMs`: the caller never extends it. */
  readonly sessionTtlMs?: number;
}

/** A session as read back: never the raw id, never a token. */
export interface SessionRecord {
  /** SHA-256 (hex) of the session id: safe to log and to show in admin listings. */
  readonly idHash: string;
  /** `'expired'` once past `expiresAt` (until {@link SessionStore.cleanup} deletes the row). */
  readonly status: SessionStatus;
  /** The authenticated subject; `undefined` while pending. */
  readonly subject: string | undefined;
  /** The issuer of the authenticated subject; `undefined` while pending (or when it was not recorded). */
  readonly issuer?: string | undefined;
  /** The authenticated tenant; `undefined` while pending. */
  readonly tenantId: string | undefined;
  /** When the login started, ms since the epoch. */
  readonly createdAt: number;
  /** When it was authenticated, ms since the epoch; `undefined` while pending. */
  readonly authenticatedAt: number | undefined;
  /** When the pending login or the authenticated session expires, ms since the epoch. */
  readonly expiresAt: number;
}

/** One entry of {@link SessionStore.listForSubject}. */
export interface SessionSummary {
  /** SHA-256 (hex) of the session id. */
  readonly idHash: string;
  /** As in {@link SessionRecord.status}. */
  readonly status: SessionStatus;
  /** When the login started, ms since the epoch. */
  readonly createdAt: number;
  /** When it was authenticated, ms since the epoch. */
  readonly authenticatedAt: number | undefined;
  /** When the session expires, ms since the epoch. */
  readonly expiresAt: number;
}

/** The decrypted tokens of an authenticated session. Never log them. */
export interface SessionTokens {
  /** The current access token. */
  readonly accessToken: string;
  /** The current refresh token, when the provider issued one. */
  readonly refreshToken: string | undefined;
  /** The ID token of the login (or of the last refresh that returned one). */
  readonly idToken: string | undefined;
  /** Access token expiry, ms since the epoch. */
  readonly expiresAt: number;
}

/** New tokens after a refresh. An omitted `refreshToken` or `idToken` keeps the stored one (RFC 6749 §6). */
export interface SessionTokensUpdate {
  /** The new access token. */
  readonly accessToken: string;
  /** A rotated refresh token; omitted keeps the stored one. */
  readonly refreshToken?: string;
  /** A new ID token; omitted keeps the stored one. */
  readonly idToken?: string;
  /** Access token expiry, ms since the epoch. */
  readonly expiresAt: number;
}

/**
 * Where login sessions live. Untrusted inputs (a session id or a state from a client) never throw for being
 * malformed: they read as not found. Arguments of the wrong type are a `TypeError` (a bug in the caller).
 * A database that cannot be reached is `SERVICE_UNAVAILABLE`; data that does not decrypt is `INTERNAL`.
 */
export interface SessionStore {
  /**
   * Starts a login. Throws `BAD_REQUEST` when the binding already has `maxPendingPerBinding` pending logins,
   * `SERVICE_UNAVAILABLE` when the store holds `maxPending` pending logins in all.
   */
  createPending(input: PendingSessionInput): Promise<CreatedPendingSession>;
  /**
   * Consumes the pending login that `state` names and returns its session id and secrets. Single-use: a
   * second call with the same state, an unknown state or an expired login throws `NOT_FOUND`.
   */
  consumePending(state: string): Promise<{ readonly sessionId: string; readonly pending: PendingSession }>;
  /**
   * Turns a consumed pending login into an authenticated session. `NOT_FOUND` when the session is not a
   * consumed, unexpired pending login (so it runs once per login, and never before the state was checked).
   * Evicts (logs out) the subject's oldest sessions beyond `maxSessionsPerSubject`. `TOKEN_EXPIRED` when the
   * access token has expired and there is no refresh token.
   */
  authenticate(sessionId: string, input: AuthenticatedSessionInput): Promise<void>;
  /** Reads a session. With `binding`, a session started under another binding reads as `undefined`. */
  get(sessionId: string, binding?: string): Promise<SessionRecord | undefined>;
  /** The decrypted tokens of an authenticated, unexpired session; `undefined` otherwise. */
  tokens(sessionId: string, binding?: string): Promise<SessionTokens | undefined>;
  /**
   * Stores refreshed tokens. The session keeps its id, subject, tenant and expiry (a refresh never extends a
   * session). `NOT_FOUND` unless the session is authenticated and unexpired.
   */
  updateTokens(sessionId: string, tokens: SessionTokensUpdate): Promise<void>;
  /**
   * Ends a pending or authenticated session and erases its sealed data. True when it did; false when the
   * session is unknown, already over, or (with `binding`) started under another binding.
   */
  logout(sessionId: string, binding?: string): Promise<boolean>;
  /**
   * Every session of one subject in one tenant, oldest first (for admin listings and "log out everywhere").
   * With `issuer`, only that issuer's subject (a person is (issuer, subject)); without, the subject of every
   * issuer.
   */
  listForSubject(tenantId: string, subject: string, issuer?: string): Promise<SessionSummary[]>;
  /** Deletes every expired row (pending, authenticated or logged out); returns how many. */
  cleanup(): Promise<number>;
  /** Stops the cleanup timer. The store refuses further calls (`SERVICE_UNAVAILABLE`); a database stays open. */
  close(): Promise<void>;
}

/** Limits and timing shared by every store. Invalid values are `CONFIG_INVALID` at creation. */
export interface SessionStoreOptions {
  /**
   * Pending logins in the whole store (all replicas). Default 1000. Beyond it `createPending` is
   * `SERVICE_UNAVAILABLE`: a flood of started-and-abandoned logins cannot fill the database.
   */
  readonly maxPending?: number;
  /**
   * Pending logins per binding. Default 5. Beyond it `createPending` is `BAD_REQUEST`, so one client cannot use
   * up `maxPending` for everyone.
   */
  readonly maxPendingPerBinding?: number;
  /** Live authenticated sessions per subject and tenant. Default 10; the oldest are logged out first. */
  readonly maxSessionsPerSubject?: number;
  /** Lifetime (and maximum) of a pending login, ms. Default 600000 (10 minutes). */
  readonly pendingTtlMs?: number;
  /**
   * Maximum lifetime of an authenticated session, ms, counted from authentication; refreshes do not extend it.
   * Default 28800000 (8 hours). Longer sessions keep refresh tokens usable longer if the database leaks with
   * the master key.
   */
  readonly sessionTtlMs?: number;
  /**
   * How often the store deletes expired rows by itself, ms (an unref'd timer). Default 600000 (10 minutes);
   * 0 turns it off (then call {@link SessionStore.cleanup} yourself, or expired rows accumulate).
   */
  readonly cleanupIntervalMs?: number;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly clock?: Clock;
  /** Receives warnings (limits reached, failed background cleanup). Default: silent. */
  readonly logger?: Logger;
}

/** Options of {@link createMemorySessionStore}. */
export interface MemorySessionStoreOptions extends SessionStoreOptions {
  /**
   * Key ring sealing tokens and PKCE secrets in memory. Default: a random key for this store only, which is
   * enough since memory does not outlive the process.
   */
  readonly masterKey?: MasterKeyRing;
}

// ---------------------------------------------------------------------------------------------------------
// Shared by the memory and Postgres stores. Not part of the public API.
// ---------------------------------------------------------------------------------------------------------

/** @internal Purpose of the sealed tokens (HKDF info). */
export const TOKENS_PURPOSE = 'session-tokens';
/** @internal Purpose of the sealed pending secrets (HKDF info). */
export const PENDING_PURPOSE = 'session-pending';

const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const MAX_INPUT_LENGTH = 8192;

/** @internal The validated, defaulted options. */
export interface ResolvedSessionOptions {
  readonly maxPending: number;
  readonly maxPendingPerBinding: number;
  readonly maxSessionsPerSubject: number;
  readonly pendingTtlMs: number;
  readonly sessionTtlMs: number;
  readonly cleanupIntervalMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

function optionInteger(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new AuthSecError('CONFIG_INVALID', `Session store option ${name} must be an integer >= ${min}`);
  }
  return value;
}

/** @internal Validates and defaults {@link SessionStoreOptions}; `CONFIG_INVALID` names the bad option. */
export function resolveSessionOptions(options: SessionStoreOptions): ResolvedSessionOptions {
  if (options.clock !== undefined && typeof options.clock !== 'function') {
    throw new AuthSecError('CONFIG_INVALID', 'Session store option clock must be a function');
  }
  const userClock = options.clock;
  const maxPending = optionInteger('maxPending', options.maxPending, 1000, 1);
  const maxPendingPerBinding = optionInteger('maxPendingPerBinding', options.maxPendingPerBinding, 5, 1);
  if (maxPendingPerBinding > maxPending) {
    throw new AuthSecError('CONFIG_INVALID', 'Session store option maxPendingPerBinding exceeds maxPending');
  }
  return {
    maxPending,
    maxPendingPerBinding,
    maxSessionsPerSubject: optionInteger('maxSessionsPerSubject', options.maxSessionsPerSubject, 10, 1),
    pendingTtlMs: optionInteger('pendingTtlMs', options.pendingTtlMs, 10 * 60_000, 1000),
    sessionTtlMs: optionInteger('sessionTtlMs', options.sessionTtlMs, 8 * 3_600_000, 1000),
    cleanupIntervalMs: optionInteger('cleanupIntervalMs', options.cleanupIntervalMs, 10 * 60_000, 0),
    // Whole milliseconds: times are stored as integers.
    clock: userClock ? () => Math.floor(userClock()) : Date.now,
    logger: options.logger ?? silentLogger,
  };
}

/** @internal Validates a master key ring given in options (`CONFIG_INVALID` when unusable). */
export function checkMasterKey(ring: MasterKeyRing | undefined): MasterKeyRing {
  if (
    !ring ||
    typeof ring.activeKid !== 'string' ||
    !(ring.keys instanceof Map) ||
    !ring.keys.has(ring.activeKid)
  ) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'Session store option masterKey must be a key ring (parseMasterKey)',
    );
  }
  return ring;
}

/** @internal A fresh 256-bit random value, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** @internal SHA-256 (hex) of a session id, state or binding: what the store keeps instead of the value. */
export function hashSecret(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** @internal True when `value` could be a session id or state we issued (anything else is simply not found). */
export function isWellFormedSecret(value: unknown): value is string {
  return typeof value === 'string' && SECRET_PATTERN.test(value);
}

function requireText(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_INPUT_LENGTH) {
    throw new TypeError(`${name} must be a non-empty string of at most ${MAX_INPUT_LENGTH} characters`);
  }
  return value;
}

function requireToken(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

function optionalToken(name: string, value: unknown): string | undefined {
  return value === undefined ? undefined : requireToken(name, value);
}

// Largest time a Date can hold; also keeps every stored time inside a bigint column.
const MAX_TIME = 8.64e15;

function requireTime(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_TIME) {
    throw new TypeError(`${name} must be a time in milliseconds since the epoch`);
  }
  return Math.floor(value);
}

function clampTtl(name: string, value: unknown, max: number): number {
  if (value === undefined) return max;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive number of milliseconds`);
  }
  return Math.min(Math.floor(value), max);
}

/** @internal The binding argument of a lookup, hashed; `undefined` when none was given. */
export function bindingHashOf(binding: unknown): string | undefined {
  if (binding === undefined) return undefined;
  return hashSecret(requireText('binding', binding));
}

/** @internal True when a lookup's binding (hashed) allows seeing a row bound to `stored`. */
export function bindingMatches(stored: string, wanted: string | undefined): boolean {
  return wanted === undefined || constantTimeEqual(stored, wanted);
}

/** @internal A new pending login: its public half, and the row to store. */
export interface NewPending {
  readonly created: CreatedPendingSession;
  readonly row: StoredSession;
}

/**
 * @internal Validates a pending input and builds the row to store: random id and state, hashes, the secrets
 * (and the raw session id, needed once by the callback) sealed under the id hash.
 */
export function buildPending(
  ring: MasterKeyRing,
  input: PendingSessionInput,
  options: ResolvedSessionOptions,
  now: number,
): NewPending {
  if (typeof input !== 'object' || input === null)
    throw new TypeError('createPending: input must be an object');
  const codeVerifier = requireText('codeVerifier', input.codeVerifier);
  const nonce = requireText('nonce', input.nonce);
  const redirectUri = requireText('redirectUri', input.redirectUri);
  const binding = requireText('binding', input.binding);
  const expiresAt = now + clampTtl('ttlMs', input.ttlMs, options.pendingTtlMs);
  const sessionId = newSecret();
  const state = newSecret();
  const idHash = hashSecret(sessionId);
  const sealed = seal(
    ring,
    PENDING_PURPOSE,
    JSON.stringify({ s: sessionId, v: codeVerifier, n: nonce, r: redirectUri }),
    idHash,
  );
  return {
    created: { sessionId, state, expiresAt },
    row: {
      idHash,
      stateHash: hashSecret(state),
      bindingHash: hashSecret(binding),
      status: 'pending',
      consumed: false,
      pendingSealed: sealed,
      tenantId: undefined,
      subject: undefined,
      tokensSealed: undefined,
      tokenExpiresAt: undefined,
      createdAt: now,
      authenticatedAt: undefined,
      expiresAt,
    },
  };
}

/** @internal Opens a row's sealed pending secrets, checking that they belong to this row. */
export function openPending(
  ring: MasterKeyRing,
  idHash: string,
  sealed: Uint8Array,
  expiresAt: number,
): { sessionId: string; pending: PendingSession } {
  const value = parseSealed(open(ring, PENDING_PURPOSE, sealed, idHash));
  const { s, v, n, r } = value;
  if (typeof s !== 'string' || typeof v !== 'string' || typeof n !== 'string' || typeof r !== 'string') {
    throw new AuthSecError('INTERNAL', 'Stored login data is malformed');
  }
  // The AAD already binds the ciphertext to the row; this also catches a row whose id hash was rewritten.
  if (!constantTimeEqual(hashSecret(s), idHash))
    throw new AuthSecError('INTERNAL', 'Stored login data is malformed');
  return { sessionId: s, pending: { codeVerifier: v, nonce: n, redirectUri: r, expiresAt } };
}

/** @internal What an authenticated input turns into. */
export interface AuthenticatedFields {
  readonly tenantId: string;
  readonly subject: string;
  readonly issuer: string | undefined;
  readonly tokensSealed: Buffer;
  readonly tokenExpiresAt: number;
  readonly expiresAt: number;
}

/**
 * @internal Validates an authenticated input, seals its tokens and computes the session expiry: `now` plus the
 * clamped lifetime, and no later than the access token when there is no refresh token to renew it.
 */
export function buildAuthenticated(
  ring: MasterKeyRing,
  idHash: string,
  input: AuthenticatedSessionInput,
  options: ResolvedSessionOptions,
  now: number,
): AuthenticatedFields {
  if (typeof input !== 'object' || input === null)
    throw new TypeError('authenticate: input must be an object');
  const subject = requireText('subject', input.subject);
  const issuer = input.issuer === undefined ? undefined : requireText('issuer', input.issuer);
  if (!isValidTenantId(input.tenantId)) throw new TypeError('tenantId must be a valid tenant id');
  const accessToken = requireToken('accessToken', input.accessToken);
  const refreshToken = optionalToken('refreshToken', input.refreshToken);
  const idToken = optionalToken('idToken', input.idToken);
  const tokenExpiresAt = requireTime('expiresAt', input.expiresAt);
  let expiresAt = now + clampTtl('sessionTtlMs', input.sessionTtlMs, options.sessionTtlMs);
  if (refreshToken === undefined) {
    if (tokenExpiresAt <= now)
      throw new AuthSecError('TOKEN_EXPIRED', 'The access token has already expired');
    expiresAt = Math.min(expiresAt, tokenExpiresAt);
  }
  return {
    tenantId: input.tenantId,
    subject,
    issuer,
    tokensSealed: sealTokens(ring, idHash, { accessToken, refreshToken, idToken }),
    tokenExpiresAt,
    expiresAt,
  };
}

interface TokenSecrets {
  readonly accessToken: string;
  readonly refreshToken: string | undefined;
  readonly idToken: string | undefined;
}

function sealTokens(ring: MasterKeyRing, idHash: string, tokens: TokenSecrets): Buffer {
  return seal(
    ring,
    TOKENS_PURPOSE,
    JSON.stringify({ a: tokens.accessToken, r: tokens.refreshToken, i: tokens.idToken }),
    idHash,
  );
}

function parseSealed(plain: Buffer): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(plain.toString('utf8'));
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new AuthSecError('INTERNAL', 'Stored session data is malformed');
}

/** @internal Opens a row's sealed tokens (`INTERNAL` when the key, the row or a byte is wrong). */
export function openTokens(
  ring: MasterKeyRing,
  idHash: string,
  sealed: Uint8Array,
  expiresAt: number,
): SessionTokens {
  const { a, r, i } = parseSealed(open(ring, TOKENS_PURPOSE, sealed, idHash));
  if (
    typeof a !== 'string' ||
    (r !== undefined && typeof r !== 'string') ||
    (i !== undefined && typeof i !== 'string')
  ) {
    throw new AuthSecError('INTERNAL', 'Stored session data is malformed');
  }
  return { accessToken: a, refreshToken: r, idToken: i, expiresAt };
}

/** @internal Validates refreshed tokens (a `TypeError` for a bad shape) before any row is touched. */
export function checkTokenUpdate(update: SessionTokensUpdate): SessionTokensUpdate {
  if (typeof update !== 'object' || update === null)
    throw new TypeError('updateTokens: tokens must be an object');
  return {
    accessToken: requireToken('accessToken', update.accessToken),
    ...(update.refreshToken === undefined
      ? {}
      : { refreshToken: requireToken('refreshToken', update.refreshToken) }),
    ...(update.idToken === undefined ? {} : { idToken: requireToken('idToken', update.idToken) }),
    expiresAt: requireTime('expiresAt', update.expiresAt),
  };
}

/** @internal Merges checked refreshed tokens into the stored ones and seals the result. */
export function sealTokenUpdate(
  ring: MasterKeyRing,
  idHash: string,
  current: SessionTokens,
  update: SessionTokensUpdate,
): { tokensSealed: Buffer; tokenExpiresAt: number } {
  const tokensSealed = sealTokens(ring, idHash, {
    accessToken: update.accessToken,
    refreshToken: update.refreshToken ?? current.refreshToken,
    idToken: update.idToken ?? current.idToken,
  });
  return { tokensSealed, tokenExpiresAt: update.expiresAt };
}

/** @internal Checks the arguments of {@link SessionStore.listForSubject}. */
export function checkSubjectArguments(tenantId: unknown, subject: unknown, issuer?: unknown): void {
  if (!isValidTenantId(tenantId)) throw new TypeError('tenantId must be a valid tenant id');
  requireText('subject', subject);
  if (issuer !== undefined) requireText('issuer', issuer);
}

/** @internal One stored session, as both stores keep it. Timestamps are ms since the epoch. */
export interface StoredSession {
  /** SHA-256 hex of the session id (primary key). */
  idHash: string;
  /** SHA-256 hex of the state while the login is pending and unconsumed; then `undefined`. */
  stateHash: string | undefined;
  /** SHA-256 hex of the binding. */
  bindingHash: string;
  status: 'pending' | 'authenticated' | 'logged_out';
  /** True once the state was presented (pending logins only). */
  consumed: boolean;
  /** Sealed `{ sessionId, verifier, nonce, redirectUri }` until the state is consumed. */
  pendingSealed: Uint8Array | undefined;
  tenantId: string | undefined;
  subject: string | undefined;
  /** The issuer of `subject`, when recorded. */
  issuer?: string | undefined;
  /** Sealed tokens while authenticated. */
  tokensSealed: Uint8Array | undefined;
  tokenExpiresAt: number | undefined;
  createdAt: number;
  authenticatedAt: number | undefined;
  expiresAt: number;
}

/** @internal The status a row reads as at `now`. */
export function statusAt(row: Pick<StoredSession, 'status' | 'expiresAt'>, now: number): SessionStatus {
  if (row.status !== 'logged_out' && row.expiresAt <= now) return 'expired';
  return row.status;
}

/** @internal The public view of a row. */
export function toSessionRecord(row: StoredSession, now: number): SessionRecord {
  return Object.freeze({
    idHash: row.idHash,
    status: statusAt(row, now),
    subject: row.subject,
    issuer: row.issuer,
    tenantId: row.tenantId,
    createdAt: row.createdAt,
    authenticatedAt: row.authenticatedAt,
    expiresAt: row.expiresAt,
  });
}

/** @internal The listing view of a row. */
export function toSessionSummary(row: StoredSession, now: number): SessionSummary {
  return Object.freeze({
    idHash: row.idHash,
    status: statusAt(row, now),
    createdAt: row.createdAt,
    authenticatedAt: row.authenticatedAt,
    expiresAt: row.expiresAt,
  });
}

/** @internal `NOT_FOUND` for a state that is unknown, used or expired. */
export function loginNotFound(expired = false): AuthSecError {
  return new AuthSecError(
    'NOT_FOUND',
    expired ? 'The login has expired; start it again' : 'Unknown or already used login state',
  );
}

/** @internal `NOT_FOUND` for a session that cannot take the operation. */
export function sessionNotFound(what: string): AuthSecError {
  return new AuthSecError('NOT_FOUND', `No ${what} for this session id`);
}

/** @internal The error of a call on a closed store. */
export function storeClosed(): AuthSecError {
  return new AuthSecError('SERVICE_UNAVAILABLE', 'The session store is closed');
}

/** @internal Starts the background cleanup (unref'd); returns a function that stops it. */
export function startCleanupTimer(
  store: Pick<SessionStore, 'cleanup'>,
  options: ResolvedSessionOptions,
): () => void {
  if (options.cleanupIntervalMs === 0) return () => {};
  const timer = setInterval(() => {
    store.cleanup().catch((error: unknown) => {
      options.logger.warn('Session cleanup failed', { code: (error as { code?: unknown })?.code });
    });
  }, options.cleanupIntervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function ephemeralKeyRing(): MasterKeyRing {
  return { activeKid: 'ephemeral', keys: new Map([['ephemeral', new Uint8Array(randomBytes(32))]]) };
}

// ---------------------------------------------------------------------------------------------------------
// The memory store.
// ---------------------------------------------------------------------------------------------------------

/**
 * A {@link SessionStore} in process memory, with the same contract as the Postgres store: for tests, for a
 * single process without a database, and for stdio servers that do not remember logins. Tokens and PKCE
 * secrets are sealed here too, so a heap dump shows no token. Sessions are lost when the process ends.
 *
 * Invalid options are `CONFIG_INVALID`.
 */
export function createMemorySessionStore(options: MemorySessionStoreOptions = {}): SessionStore {
  const resolved = resolveSessionOptions(options);
  const ring = options.masterKey === undefined ? ephemeralKeyRing() : checkMasterKey(options.masterKey);
  const { clock, logger } = resolved;
  const rows = new Map<string, StoredSession>();
  const byState = new Map<string, string>();
  let closed = false;

  const live = (): void => {
    if (closed) throw storeClosed();
  };
  const lookup = (sessionId: unknown, binding: unknown): StoredSession | undefined => {
    const wanted = bindingHashOf(binding);
    if (!isWellFormedSecret(sessionId)) return undefined;
    const row = rows.get(hashSecret(sessionId));
    return row && bindingMatches(row.bindingHash, wanted) ? row : undefined;
  };

  // Every method below runs synchronously to its end after its checks: no await splits a read from its
  // write, so concurrent calls in this process see each step whole.
  const store: SessionStore = {
    async createPending(input) {
      live();
      const now = clock();
      const { created, row } = buildPending(ring, input, resolved, now);
      let total = 0;
      let mine = 0;
      for (const r of rows.values()) {
        if (r.status !== 'pending' || r.expiresAt <= now) continue;
        total++;
        if (r.bindingHash === row.bindingHash) mine++;
      }
      if (mine >= resolved.maxPendingPerBinding) {
        throw new AuthSecError('BAD_REQUEST', 'Too many pending logins; finish or wait for one to expire');
      }
      if (total >= resolved.maxPending) {
        logger.warn('Pending login limit reached', { maxPending: resolved.maxPending });
        throw new AuthSecError('SERVICE_UNAVAILABLE', 'Too many pending logins');
      }
      rows.set(row.idHash, row);
      byState.set(row.stateHash!, row.idHash);
      return created;
    },

    async consumePending(state) {
      live();
      if (!isWellFormedSecret(state)) throw loginNotFound();
      const stateHash = hashSecret(state);
      const idHash = byState.get(stateHash);
      const row = idHash === undefined ? undefined : rows.get(idHash);
      if (
        row?.status !== 'pending' ||
        row.stateHash === undefined ||
        !constantTimeEqual(row.stateHash, stateHash)
      ) {
        throw loginNotFound();
      }
      const sealed = row.pendingSealed;
      byState.delete(stateHash);
      row.stateHash = undefined;
      row.consumed = true;
      row.pendingSealed = undefined;
      if (row.expiresAt <= clock() || !sealed) throw loginNotFound(true);
      return openPending(ring, row.idHash, sealed, row.expiresAt);
    },

    async authenticate(sessionId, input) {
      live();
      const now = clock();
      const row = lookup(sessionId, undefined);
      if (row?.status !== 'pending' || !row.consumed || row.expiresAt <= now) {
        throw sessionNotFound('login awaiting authentication');
      }
      const fields = buildAuthenticated(ring, row.idHash, input, resolved, now);
      const active = [...rows.values()]
        .filter(
          (r) =>
            r.status === 'authenticated' &&
            r.expiresAt > now &&
            r.tenantId === fields.tenantId &&
            r.subject === fields.subject &&
            r.issuer === fields.issuer,
        )
        .sort((x, y) => (x.authenticatedAt ?? 0) - (y.authenticatedAt ?? 0));
      for (const old of active.slice(0, Math.max(0, active.length - resolved.maxSessionsPerSubject + 1))) {
        old.status = 'logged_out';
        old.tokensSealed = undefined;
      }
      row.status = 'authenticated';
      row.tenantId = fields.tenantId;
      row.subject = fields.subject;
      row.issuer = fields.issuer;
      row.tokensSealed = fields.tokensSealed;
      row.tokenExpiresAt = fields.tokenExpiresAt;
      row.authenticatedAt = now;
      row.expiresAt = fields.expiresAt;
      row.pendingSealed = undefined;
    },

    async get(sessionId, binding) {
      live();
      const row = lookup(sessionId, binding);
      return row ? toSessionRecord(row, clock()) : undefined;
    },

    async tokens(sessionId, binding) {
      live();
      const row = lookup(sessionId, binding);
      if (!row || statusAt(row, clock()) !== 'authenticated' || !row.tokensSealed) return undefined;
      return openTokens(ring, row.idHash, row.tokensSealed, row.tokenExpiresAt ?? 0);
    },

    async updateTokens(sessionId, update) {
      live();
      const checked = checkTokenUpdate(update);
      const row = lookup(sessionId, undefined);
      if (!row || statusAt(row, clock()) !== 'authenticated' || !row.tokensSealed) {
        throw sessionNotFound('authenticated session');
      }
      const current = openTokens(ring, row.idHash, row.tokensSealed, row.tokenExpiresAt ?? 0);
      const next = sealTokenUpdate(ring, row.idHash, current, checked);
      row.tokensSealed = next.tokensSealed;
      row.tokenExpiresAt = next.tokenExpiresAt;
    },

    async logout(sessionId, binding) {
      live();
      const row = lookup(sessionId, binding);
      if (!row || row.status === 'logged_out' || row.expiresAt <= clock()) return false;
      if (row.stateHash !== undefined) byState.delete(row.stateHash);
      row.status = 'logged_out';
      row.stateHash = undefined;
      row.pendingSealed = undefined;
      row.tokensSealed = undefined;
      return true;
    },

    async listForSubject(tenantId, subject, issuer) {
      live();
      checkSubjectArguments(tenantId, subject, issuer);
      const now = clock();
      return [...rows.values()]
        .filter(
          (r) =>
            r.tenantId === tenantId && r.subject === subject && (issuer === undefined || r.issuer === issuer),
        )
        .sort((x, y) => (x.authenticatedAt ?? 0) - (y.authenticatedAt ?? 0))
        .map((r) => toSessionSummary(r, now));
    },

    async cleanup() {
      live();
      const now = clock();
      let count = 0;
      for (const [idHash, row] of rows) {
        if (row.expiresAt > now) continue;
        rows.delete(idHash);
        if (row.stateHash !== undefined) byState.delete(row.stateHash);
        count++;
      }
      return count;
    },

    async close() {
      if (closed) return;
      closed = true;
      stopCleanup();
      rows.clear();
      byState.clear();
    },
  };
  const stopCleanup = startCleanupTimer(store, resolved);
  return store;
}
