import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type MasterKeyRing, parseMasterKey } from './env.js';
import { AuthSecError } from './errors.js';
import { createFileOnce } from './files.js';
import type { Logger } from './types.js';

/** Options of {@link resolveMasterKey}. */
export interface ResolveMasterKeyOptions {
  /** The configured ring (`AUTHSEC_MASTER_KEY`), if any. */
  readonly masterKey: MasterKeyRing | undefined;
  /** Data folder where a development key file may be kept. */
  readonly dataDir: string;
  /** Development mode: allows generating a key file. Default: `NODE_ENV !== 'production'`. */
  readonly development?: boolean;
  /** Where the warning goes. */
  readonly logger?: Logger;
}

/**
 * Returns the configured master key ring or, in development only, one kept in `<dataDir>/master.key` (created
 * with mode 0600 on first use, with a warning). In production a missing key is `CONFIG_INVALID`: data sealed
 * under a key nobody manages would be lost with the machine.
 */
export function resolveMasterKey(options: ResolveMasterKeyOptions): MasterKeyRing {
  if (options.masterKey) return options.masterKey;
  const development = options.development ?? process.env.NODE_ENV !== 'production';
  if (!development) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'AUTHSEC_MASTER_KEY is required in production (32 bytes, base64)',
    );
  }
  const file = join(options.dataDir, 'master.key');
  let encoded: string;
  try {
    encoded = readFileSync(file, 'utf8').trim();
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new AuthSecError('CONFIG_INVALID', `Cannot read the development key file ${file}`, {
        cause: error,
      });
    }
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    // Never overwrite a key another process created a moment ago; read theirs instead.
    encoded = createFileOnce(file, `dev:${randomBytes(32).toString('base64')}\n`, 0o600).trim();
  }
  options.logger?.warn(
    'AUTHSEC_MASTER_KEY is not set: using a development key file; set the variable in production',
    {
      file,
    },
  );
  return parseMasterKey(encoded, file);
}
