/**
 * @authsec/core/vault: service credentials in HashiCorp Vault (KV v2) through node-vault, an optional peer
 * dependency loaded only by this entry.
 *
 * @packageDocumentation
 */

export {
  createVaultSecretBackend,
  type VaultSecretBackend,
  type VaultSecretBackendOptions,
} from './secrets/vault.js';
