/**
 * Sealed `requestState` for multi-round-trip requests (protocol 2026-07-28, `input_required`).
 *
 * The client echoes `requestState` back, so it is attacker-controlled input. Sealed here it is: encrypted
 * (AES-256-GCM under a key derived from the master key for this purpose alone, so nothing in it is readable,
 * argument values included), bound to the principal (issuer, tenant, subject), the target (tool, prompt) and a
 * digest of the arguments (as AAD: a state minted for one caller, tool or set of arguments does not open for
 * another), short-lived, and one-time (its id is consumed on first use, so a replayed state is refused).
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { digestArguments } from './audit.js';
import { open, seal } from './crypto.js';
import type { MasterKeyRing } from './env.js';
import { AuthSecError } from './errors.js';
import { principalKey } from './pipeline.js';
import type { Principal } from './types.js';

/** What a sealed state is bound to. */
export interface RequestStateBinding {
  readonly principal: Principal;
  /** The request's method, e.g. `tools/call` (bound as AAD: checked when the state is opened). */
  readonly method: string;
  /** The primitive it belongs to, e.g. the tool's name (sealed inside: see {@link OpenedRequestState}). */
  readonly target: string;
  /** The request's arguments (only their digest is sealed). */
  readonly arguments?: unknown;
}

/**
 * An opened state: its payload, and the target and argument digest it was sealed for, which the caller checks
 * against the request with {@link RequestStateSealer.matches} (the SDK's verification hook, where the state is
 * opened, does not see the request's parameters).
 */
export interface OpenedRequestState {
  readonly payload: unknown;
  readonly target: string;
  readonly argumentsDigest: string;
}

/** Where used state ids are remembered until they expire: the one-time guarantee across replicas. */
export interface RequestStateStore {
  /** Marks `id` used; `false` when it was used before. */
  consume(id: string, expiresAt: number): boolean | Promise<boolean>;
}

/** Options of {@link createRequestStateSealer}. */
export interface RequestStateSealerOptions {
  /**
   * The master key ring (`AUTHSEC_MASTER_KEY`). Default: a random key for this process only, so a state opens
   * only on the replica that minted it; give the ring when several replicas serve one endpoint.
   */
  readonly keys?: MasterKeyRing;
  /** How long a state may be echoed back, milliseconds. Default 10 minutes. */
  readonly ttlMs?: number;
  /** Used ids. Default: in this process's memory (one replica); a shared store for several. */
  readonly store?: RequestStateStore;
  /** The clock, for tests. Default `Date.now`. */
  readonly clock?: () => number;
}

/** Seals and opens `requestState`: see {@link createRequestStateSealer}. */
export interface RequestStateSealer {
  /** Seals `payload` (any JSON value) bound to `binding`; the string a handler returns as `requestState`. */
  seal(payload: unknown, binding: RequestStateBinding): string;
  /**
   * Opens an echoed state for `principal` and `method`, once. Throws `BAD_REQUEST` whose `details.reason` is
   * `malformed`, `sealed` (tampered, another key, caller or method), `expired` or `replayed`; never the payload.
   */
  open(state: string, principal: Principal, method: string): Promise<OpenedRequestState>;
  /** Whether an opened state was sealed for this target and these arguments. */
  matches(opened: OpenedRequestState, target: string, args: unknown): boolean;
}

const PREFIX = 'as1.';
const PURPOSE = 'request-state';
const DEFAULT_TTL_MS = 10 * 60 * 1000;
const MAX_STATE_LENGTH = 64 * 1024;

/** An in-memory {@link RequestStateStore}, bounded: the oldest entries go first past `max`. */
export function createMemoryRequestStateStore(
  max = 100_000,
  clock: () => number = Date.now,
): RequestStateStore {
  const used = new Map<string, number>();
  return {
    consume(id, expiresAt) {
      const now = clock();
      if (used.has(id) && used.get(id)! > now) return false;
      used.set(id, expiresAt);
      if (used.size > max) {
        for (const [key, expiry] of used) {
          if (used.size <= max) break;
          if (expiry <= now || used.size > max) used.delete(key);
        }
      }
      return true;
    },
  };
}

function aad(principal: Principal, method: string): string {
  return `${principalKey(principal)}\u0000${method}`;
}

function refuse(reason: 'malformed' | 'sealed' | 'expired' | 'replayed'): AuthSecError {
  return new AuthSecError('BAD_REQUEST', 'Invalid or expired requestState', { details: { reason } });
}

/**
 * Creates the sealer of `requestState` (see the module comment). Misconfiguration is a `TypeError`.
 */
export function createRequestStateSealer(options: RequestStateSealerOptions = {}): RequestStateSealer {
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new TypeError('ttlMs must be a positive integer');
  const clock = options.clock ?? Date.now;
  const keys: MasterKeyRing = options.keys ?? {
    activeKid: 'process',
    keys: new Map([['process', randomBytes(32)]]),
  };
  const store = options.store ?? createMemoryRequestStateStore(100_000, clock);
  return {
    seal(payload, binding) {
      const body = JSON.stringify({
        p: payload ?? null,
        t: binding.target,
        d: digestArguments(binding.arguments ?? {}),
        exp: clock() + ttlMs,
        id: randomUUID(),
      });
      return PREFIX + seal(keys, PURPOSE, body, aad(binding.principal, binding.method)).toString('base64url');
    },
    async open(state, principal, method) {
      if (typeof state !== 'string' || !state.startsWith(PREFIX) || state.length > MAX_STATE_LENGTH)
        throw refuse('malformed');
      let body: { p?: unknown; t?: unknown; d?: unknown; exp?: unknown; id?: unknown };
      try {
        const sealed = Buffer.from(state.slice(PREFIX.length), 'base64url');
        body = JSON.parse(open(keys, PURPOSE, sealed, aad(principal, method)).toString('utf8'));
      } catch {
        throw refuse('sealed');
      }
      if (
        typeof body.exp !== 'number' ||
        typeof body.id !== 'string' ||
        typeof body.t !== 'string' ||
        typeof body.d !== 'string'
      )
        throw refuse('malformed');
      if (body.exp <= clock()) throw refuse('expired');
      if (!(await store.consume(body.id, body.exp))) throw refuse('replayed');
      return { payload: body.p, target: body.t, argumentsDigest: body.d };
    },
    matches(opened, target, args) {
      return opened.target === target && opened.argumentsDigest === digestArguments(args ?? {});
    },
  };
}
