import type { SecretBackend } from './types.js';

/**
 * What a backend may offer beyond {@link SecretBackend} so that caches can revalidate cheaply: the current
 * version of a service without reading (or decrypting) its values.
 */
export interface SecretVersionProbe {
  /** The current version of a service, or `undefined` when it does not exist. Same errors as `read`. */
  currentVersion(tenantId: string, name: string): Promise<number | undefined>;
}

/** True when `backend` offers {@link SecretVersionProbe.currentVersion}. */
export function hasVersionProbe(backend: SecretBackend): backend is SecretBackend & SecretVersionProbe {
  return typeof (backend as Partial<SecretVersionProbe>).currentVersion === 'function';
}
