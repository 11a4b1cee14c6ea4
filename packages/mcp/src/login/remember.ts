import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Logger, type MasterKeyRing, openSealed, seal } from '@authsec/core';

/** HKDF purpose of the remembered-login file: its key is used for nothing else. */
export const REMEMBER_PURPOSE = 'remembered-login';
const AAD = 'authsec:remembered-login:v1';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/**
 * The login remembered for the local OS user (stdio): one file holding the session id, sealed with the master
 * key (AES-256-GCM, purpose `remembered-login`), mode 0600 in a directory created 0700, written atomically.
 * The file alone is useless without the master key, and the session it names still has to be live in the
 * session store (which holds the tokens, sealed too).
 */
export interface RememberedLogin {
  /** The remembered session id, or `undefined` (no file, or one that does not open: it is then deleted). */
  read(): Promise<string | undefined>;
  /** Remembers `sessionId` (replacing any other). */
  write(sessionId: string): Promise<void>;
  /** Deletes the file; with `sessionId`, only when it names that session. */
  forget(sessionId?: string): Promise<void>;
}

/** Creates the remembered-login file handler. Nothing is touched until the first call. */
export function createRememberedLogin(
  file: string,
  masterKey: MasterKeyRing,
  logger: Logger,
): RememberedLogin {
  const remove = async (): Promise<void> => {
    await rm(file, { force: true }).catch((cause: unknown) => {
      logger.warn('Could not delete the remembered login', { file, cause: String(cause) });
    });
  };

  const read = async (): Promise<string | undefined> => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      logger.warn('Could not read the remembered login', { file, cause: String(error) });
      return undefined;
    }
    try {
      const mode = (await stat(file)).mode;
      if ((mode & 0o077) !== 0) await chmod(file, 0o600);
      const value: unknown = JSON.parse(
        openSealed(masterKey, REMEMBER_PURPOSE, Buffer.from(text.trim(), 'base64url'), AAD).toString('utf8'),
      );
      const sessionId = (value as { sessionId?: unknown } | null)?.sessionId;
      if (typeof sessionId === 'string' && SESSION_ID.test(sessionId)) return sessionId;
    } catch {
      // Reported below: another master key, or a damaged file.
    }
    logger.warn('The remembered login could not be opened (another master key?); it was deleted', { file });
    await remove();
    return undefined;
  };

  return {
    read,
    async write(sessionId) {
      const sealed = seal(masterKey, REMEMBER_PURPOSE, JSON.stringify({ sessionId }), AAD);
      const dir = dirname(file);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // Write then rename: a concurrent reader (another stdio process) sees the old file or the new one.
      const temporary = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await writeFile(temporary, `${sealed.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
        await rename(temporary, file);
      } catch (error) {
        await rm(temporary, { force: true }).catch(() => {});
        throw error;
      }
    },
    async forget(sessionId) {
      if (sessionId !== undefined && (await read()) !== sessionId) return;
      await remove();
    },
  };
}
