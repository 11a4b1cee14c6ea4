import { createHash, randomBytes } from 'node:crypto';

export { formOf, ScriptedBrowser as Browser } from '../../src/browser.js';

/** A PKCE verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}
