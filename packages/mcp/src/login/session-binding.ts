import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AuthSecError, constantTimeEqual, createFileOnce } from '@authsec/core';

/**
 * A login's `session_id` bound to the data folder (and so the OS user) that started it: the id the tools hand
 * out is `<session id>.<MAC>`, an HMAC-SHA256 of the store's session id under a 32-byte key in a 0600 file of
 * that folder. A process on another data folder, or another OS user (who cannot read the key), cannot present
 * a copied `session_id`: the MAC does not verify and the id is refused before the store is asked.
 */
export interface SessionIdBinding {
  /** The `session_id` to hand out for a store session id. */
  wrap(sessionId: string): string;
  /**
   * The store's session id of a presented `session_id`. `PERMISSION_DENIED` (`details.reason:
   * 'session_binding'`) when it carries no MAC, or one made under another key.
   */
  unwrap(presented: string): string;
}

const KEY_BYTES = 32;
const CONTEXT = 'authsec:session-id:v1:';

/** Reads the key file, creating it (mode 0600, in a 0700 folder) on first use; a wider mode is narrowed. */
function loadKey(file: string): Buffer {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // Another process may create it first: everyone on this folder uses that one.
  const stored = createFileOnce(file, randomBytes(KEY_BYTES).toString('base64url'), 0o600);
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const key = Buffer.from(stored.trim(), 'base64url');
  if (key.length !== KEY_BYTES)
    throw new AuthSecError('CONFIG_INVALID', `The session key file ${file} is damaged; delete it`);
  return key;
}

/** Creates the binding for the data folder's key file `file` (read or created now). */
export function createSessionIdBinding(file: string): SessionIdBinding {
  const key = loadKey(file);
  const mac = (sessionId: string) =>
    createHmac('sha256', key)
      .update(CONTEXT + sessionId)
      .digest('base64url');
  const refused = () =>
    new AuthSecError(
      'PERMISSION_DENIED',
      'This session_id belongs to another data folder or OS user; call oauth_start to log in here',
      { details: { reason: 'session_binding' } },
    );
  return {
    wrap: (sessionId) => `${sessionId}.${mac(sessionId)}`,
    unwrap(presented) {
      const dot = presented.lastIndexOf('.');
      if (dot <= 0) throw refused();
      const sessionId = presented.slice(0, dot);
      if (!constantTimeEqual(presented.slice(dot + 1), mac(sessionId))) throw refused();
      return sessionId;
    },
  };
}
