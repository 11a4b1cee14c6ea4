/**
 * The legacy era's MCP sessions (2025 Streamable HTTP, `Mcp-Session-Id`), whatever SDK line serves them: bound to
 * the subject that opened them, capped per subject and in total, closed when idle. A session never
 * authenticates: every request still carries its own token, and another subject presenting the id is answered
 * like an unknown id.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AuthSec, type Principal, principalKey } from '@authsec/core';
import { sendRpcError } from './json-response.js';

/** One live session: who opened it, when it was last used, how to close it. */
export interface LegacySession {
  /** {@link principalKey} of the subject that opened it, or `null` for a tool-login session without a token. */
  readonly owner: string | null;
  lastSeen: number;
  close(): Promise<void>;
}

/** The caps and timeouts of a {@link SessionTable}, validated by {@link createSessionTable}. */
export interface SessionTableOptions {
  readonly authsec: AuthSec;
  readonly idleMs?: number | undefined;
  readonly maxSessions?: number | undefined;
  readonly maxSessionsPerSubject?: number | undefined;
}

/** The live sessions of one endpoint. */
export interface SessionTable<S extends LegacySession> {
  readonly size: number;
  /** The session `id` names, if `principal` owns it; a session of another subject is refused, logged and audited. */
  use(id: string, principal: Principal | undefined): S | undefined;
  /** Room for one more session of `owner` (its least recently used closes past the per-subject cap). */
  makeRoom(owner: string | null): boolean;
  add(id: string, session: S): void;
  /** Forgets `session` (when its transport closed by itself). */
  forget(id: string, session: S): void;
  close(id: string, session: S): Promise<void>;
  closeAll(): Promise<void>;
  /** The live sessions (to notify them). */
  values(): IterableIterator<S>;
}

const DEFAULT_IDLE_MS = 30 * 60 * 1000;
const DEFAULT_MAX_SESSIONS = 10_000;
const DEFAULT_MAX_SESSIONS_PER_SUBJECT = 32;

function limit(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!Number.isInteger(result) || result <= 0) throw new TypeError(`${name} must be a positive integer`);
  return result;
}

/** The owner key of a session opened by `principal` (`null` without one). */
export function sessionOwner(principal: Principal | undefined): string | null {
  return principal === undefined ? null : principalKey(principal);
}

/** Creates a {@link SessionTable}. A bad cap is a `TypeError` naming the option. */
export function createSessionTable<S extends LegacySession>(options: SessionTableOptions): SessionTable<S> {
  const { authsec } = options;
  const idleMs = limit(options.idleMs, DEFAULT_IDLE_MS, 'sessionIdleTimeoutMs');
  const maxSessions = limit(options.maxSessions, DEFAULT_MAX_SESSIONS, 'maxSessions');
  const perSubject = limit(
    options.maxSessionsPerSubject,
    DEFAULT_MAX_SESSIONS_PER_SUBJECT,
    'maxSessionsPerSubject',
  );
  const sessions = new Map<string, S>();
  // Each owner's session ids, so the per-subject cap looks at one subject's (at most 32) sessions, not all.
  const byOwner = new Map<string | null, Set<string>>();
  const remove = (id: string, session: S): void => {
    if (sessions.get(id) !== session) return;
    sessions.delete(id);
    const ids = byOwner.get(session.owner);
    ids?.delete(id);
    if (ids?.size === 0) byOwner.delete(session.owner);
  };

  const close = async (id: string, session: S): Promise<void> => {
    remove(id, session);
    await session.close();
  };
  const sweep = setInterval(
    () => {
      const cutoff = Date.now() - idleMs;
      for (const [id, session] of sessions) if (session.lastSeen < cutoff) void close(id, session);
    },
    Math.min(idleMs, 60_000),
  );
  sweep.unref();

  return {
    get size() {
      return sessions.size;
    },
    use(id, principal) {
      const session = sessions.get(id);
      if (session === undefined) return undefined;
      if (session.owner !== sessionOwner(principal)) {
        authsec.logger.warn('An MCP session id was presented by another subject; refused', { status: 404 });
        authsec.audit({
          action: 'authenticate',
          decision: 'deny',
          ...(principal ? { principal } : {}),
          target: 'mcp-session',
          reason: 'PERMISSION_DENIED',
        });
        return undefined;
      }
      session.lastSeen = Date.now();
      return session;
    },
    makeRoom(owner) {
      const mine = byOwner.get(owner);
      let oldest: [string, S] | undefined;
      for (const id of mine ?? []) {
        const session = sessions.get(id)!;
        if (oldest === undefined || session.lastSeen < oldest[1].lastSeen) oldest = [id, session];
      }
      if (mine !== undefined && mine.size >= perSubject && oldest !== undefined) {
        void close(oldest[0], oldest[1]);
        return true;
      }
      if (sessions.size < maxSessions) return true;
      authsec.logger.warn('MCP session limit reached; a new session was refused', { limit: maxSessions });
      return false;
    },
    add(id, session) {
      sessions.set(id, session);
      const ids = byOwner.get(session.owner) ?? new Set<string>();
      byOwner.set(session.owner, ids);
      ids.add(id);
    },
    forget: remove,
    close,
    values: () => sessions.values(),
    async closeAll() {
      clearInterval(sweep);
      await Promise.allSettled([...sessions].map(([id, session]) => close(id, session)));
    },
  };
}

/**
 * A notification stream lives no longer than the token that opened it: at its expiry the stream ends, and the
 * client reconnects with a fresh token (which is verified like any other).
 */
export function endAtExpiry(res: ServerResponse, principal: Principal): void {
  const left = principal.expiresAt * 1000 - Date.now();
  // Timers hold at most 2^31-1 ms; tokens living longer than ~24 days are refused by the lifetime limit anyway.
  const timer = setTimeout(() => res.end(), Math.max(0, Math.min(left, 2 ** 31 - 1)));
  timer.unref();
  res.once('close', () => clearTimeout(timer));
}

/** The transport of one session, as both SDK lines' Streamable HTTP server transports have it. */
export interface SessionTransport {
  readonly sessionId?: string | undefined;
  onclose?: (() => void) | undefined;
  handleRequest(req: IncomingMessage, res: ServerResponse, body?: unknown): Promise<void>;
  close(): Promise<void>;
}

/** A session's SDK server and transport, connected by {@link serveLegacySession}. */
export interface SessionParts<M> {
  readonly transport: SessionTransport;
  readonly server: M & { connect(transport: never): Promise<void>; close(): Promise<void> };
}

/** A session of {@link serveLegacySession}: its parts, with the table's bookkeeping. */
export interface ServedSession<M> extends LegacySession, SessionParts<M> {}

/** What {@link serveLegacySession} needs of its SDK line. */
export interface LegacySessionHooks<M> {
  /** Creates the server and transport of a new session `id` for `principal` (connected by the caller). */
  open(id: string, principal: Principal | undefined): SessionParts<M>;
  /** Runs before each request of an existing session (a v2 server follows the request's token). */
  beforeRequest?(session: ServedSession<M>, principal: Principal | undefined): void;
}

function containsInitialize(message: unknown): boolean {
  const messages = Array.isArray(message) ? message : [message];
  return messages.some(
    (m) => typeof m === 'object' && m !== null && (m as { method?: unknown }).method === 'initialize',
  );
}

/**
 * Serves one 2025-era request on its session: an `initialize` without a session id opens one (within the
 * caps) bound to `principal`; any other request needs the id of a session that `principal` owns (another
 * subject's id is answered 404 like an unknown one). A notification stream (GET) ends when its token expires.
 * The body was already read and checked by the request pipeline.
 */
export async function serveLegacySession<M>(
  table: SessionTable<ServedSession<M>>,
  req: IncomingMessage,
  res: ServerResponse,
  message: unknown,
  principal: Principal | undefined,
  hooks: LegacySessionHooks<M>,
): Promise<void> {
  const header = req.headers['mcp-session-id'];
  const sessionId = Array.isArray(header) ? header[0] : header;
  if (sessionId === undefined) {
    if (req.method !== 'POST' || !containsInitialize(message)) {
      sendRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }
    const owner = sessionOwner(principal);
    if (!table.makeRoom(owner)) {
      sendRpcError(res, 503, -32000, 'Too many sessions; try again later', { 'retry-after': '5' });
      return;
    }
    const id = randomUUID();
    const parts = hooks.open(id, principal);
    const session: ServedSession<M> = {
      ...parts,
      owner,
      lastSeen: Date.now(),
      close: async () => {
        await Promise.allSettled([parts.transport.close(), parts.server.close()]);
      },
    };
    parts.transport.onclose = () => table.forget(id, session);
    table.add(id, session);
    await parts.server.connect(parts.transport as never);
    await parts.transport.handleRequest(req, res, message);
    // A refused initialize leaves a transport without a session: drop it rather than keep it forever.
    if (parts.transport.sessionId === undefined) await table.close(id, session);
    return;
  }
  const session = table.use(sessionId, principal);
  if (session === undefined) {
    sendRpcError(res, 404, -32001, 'Session not found');
    return;
  }
  hooks.beforeRequest?.(session, principal);
  if (req.method === 'GET' && principal !== undefined) endAtExpiry(res, principal);
  await session.transport.handleRequest(req, res, message);
}
