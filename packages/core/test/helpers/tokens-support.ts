import {
  constants,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  randomUUID,
} from 'node:crypto';
import type { JWK } from 'jose';
import { isAuthSecError } from '../../src/errors.js';
import type { Logger } from '../../src/types.js';

/** A key pair for tests, with its public JWK and PEM. */
export interface TestKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
  readonly publicPem: string;
}

function wrap(kid: string, alg: string, pair: { privateKey: KeyObject; publicKey: KeyObject }): TestKey {
  return {
    kid,
    alg,
    privateKey: pair.privateKey,
    publicJwk: { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid },
    publicPem: pair.publicKey.export({ format: 'pem', type: 'spki' }) as string,
  };
}

/** An RSA key (2048 bits unless told). */
export function rsaKey(kid: string, alg = 'RS256', modulusLength = 2048): TestKey {
  return wrap(kid, alg, generateKeyPairSync('rsa', { modulusLength }));
}

/** A P-256 / P-384 key. */
export function ecKey(kid: string, alg = 'ES256'): TestKey {
  const namedCurve = alg === 'ES384' ? 'P-384' : 'P-256';
  return wrap(kid, alg, generateKeyPairSync('ec', { namedCurve }));
}

/** An Ed25519 key. */
export function edKey(kid: string): TestKey {
  return wrap(kid, 'EdDSA', generateKeyPairSync('ed25519'));
}

/** base64url of a string, bytes or JSON value. */
export function b64url(value: unknown): string {
  if (typeof value === 'string') return Buffer.from(value).toString('base64url');
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64url');
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/** Signs `input` as the algorithm `alg` says, whatever the header of the token claims. */
export function signBytes(
  input: string,
  alg: string,
  key: TestKey | { secret: string | Uint8Array },
): Buffer {
  const hash = HASH[alg.slice(-3)] ?? 'sha256';
  if ('secret' in key) return createHmac(hash, key.secret).update(input).digest();
  if (alg.startsWith('RS')) return nodeSign(hash, Buffer.from(input), key.privateKey);
  if (alg.startsWith('PS')) {
    return nodeSign(hash, Buffer.from(input), {
      key: key.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: Number(alg.slice(-3)) / 8,
    });
  }
  if (alg.startsWith('ES'))
    return nodeSign(hash, Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  if (alg === 'EdDSA' || alg === 'Ed25519') return nodeSign(null, Buffer.from(input), key.privateKey);
  throw new Error(`test helper cannot sign ${alg}`);
}

/**
 * A compact JWS of exactly this header and payload (a string payload is used verbatim, base64url-encoded),
 * signed as `signAlg` (default: the header's `alg`). No validation at all: this builds attacks too.
 */
export function signRaw(
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
  key: TestKey | { secret: string | Uint8Array },
  signAlg = String(header.alg),
): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${signBytes(input, signAlg, key).toString('base64url')}`;
}

/** A controllable clock (ms). */
export interface TestClock {
  (): number;
  /** Seconds since the epoch, for claims. */
  seconds(): number;
  advance(ms: number): void;
  set(ms: number): void;
}

/** Starts at 2030-01-01T00:00:00Z unless told. */
export function testClock(start = Date.UTC(2030, 0, 1)): TestClock {
  let now = start;
  const clock = (() => now) as TestClock;
  clock.seconds = () => Math.floor(now / 1000);
  clock.advance = (ms) => {
    now += ms;
  };
  clock.set = (ms) => {
    now = ms;
  };
  return clock;
}

/** A claim set for tests: keys whose value is `undefined` are removed. */
export function claims(
  clock: TestClock,
  base: Record<string, unknown>,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = clock.seconds();
  const out: Record<string, unknown> = {
    sub: 'user-1',
    email: 'user-1@acme.example',
    tenant_id: 'acme-corp',
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
    ...base,
    ...overrides,
  };
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}

/** A logger that keeps every line. */
export interface MemoryLogger extends Logger {
  readonly lines: { level: string; message: string; fields: Record<string, unknown> | undefined }[];
  messages(level: string): string[];
}

/** Creates a {@link MemoryLogger}. */
export function memoryLogger(): MemoryLogger {
  const lines: MemoryLogger['lines'] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  return {
    lines,
    messages: (level) => lines.filter((line) => line.level === level).map((line) => line.message),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

/** The `code` of the AuthSecError `promise` rejects with (fails the test if it resolves or throws another error). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isAuthSecError(error)) return error.code;
    throw error;
  }
  return 'RESOLVED';
}

/** The `code` of the AuthSecError `fn` throws synchronously. */
export function syncCodeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isAuthSecError(error)) return error.code;
    throw error;
  }
  return 'RETURNED';
}
