import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MasterKeyRing } from './env.js';
import { AuthSecError } from './errors.js';

/**
 * Encryption at rest under the master key ring: AES-256-GCM with a fresh 96-bit IV per message and a key
 * derived per purpose with HKDF-SHA256, so the same master key never encrypts two kinds of data directly.
 * Ciphertexts name the key id that sealed them, so a rotated ring still opens old data.
 */

const VERSION = 1;

/** Derives a 32-byte key for `purpose` from ring key `kid` (HKDF-SHA256). */
export function deriveKey(ring: MasterKeyRing, purpose: string, kid: string = ring.activeKid): Buffer {
  const master = ring.keys.get(kid);
  if (!master) throw new AuthSecError('INTERNAL', `Master key '${kid}' is not in the key ring`);
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `authsec:${purpose}`, 32));
}

/**
 * Seals `plaintext` with the active key. `aad` binds the ciphertext to its context (a row id, a tenant), so a
 * ciphertext copied to another row does not open.
 */
export function seal(ring: MasterKeyRing, purpose: string, plaintext: Uint8Array | string, aad = ''): Buffer {
  const kid = Buffer.from(ring.activeKid, 'utf8');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(ring, purpose), iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION, kid.length]), kid, iv, cipher.getAuthTag(), body]);
}

/** Opens what {@link seal} produced. A wrong key, AAD or a tampered byte is `INTERNAL` (never a partial result). */
export function open(ring: MasterKeyRing, purpose: string, sealed: Uint8Array, aad = ''): Buffer {
  const buf = Buffer.from(sealed);
  try {
    if (buf[0] !== VERSION) throw new Error('unknown ciphertext version');
    const kidLength = buf[1] ?? 0;
    const kid = buf.subarray(2, 2 + kidLength).toString('utf8');
    const iv = buf.subarray(2 + kidLength, 14 + kidLength);
    const tag = buf.subarray(14 + kidLength, 30 + kidLength);
    const body = buf.subarray(30 + kidLength);
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(ring, purpose, kid), iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (cause) {
    throw new AuthSecError('INTERNAL', 'Stored data could not be decrypted', { cause });
  }
}

/** The key id that sealed `sealed` (to find data still under an old key during rotation). */
export function sealedKeyId(sealed: Uint8Array): string {
  const buf = Buffer.from(sealed);
  return buf.subarray(2, 2 + (buf[1] ?? 0)).toString('utf8');
}

/** Constant-time equality of two strings or byte arrays (false when lengths differ). */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === 'string' ? Buffer.from(a, 'utf8') : Buffer.from(a);
  const y = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
  if (x.length !== y.length) {
    // Compare anyway so the time does not depend on where the inputs differ.
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}
