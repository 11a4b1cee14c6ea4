import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AuthSecError, type Logger, parseMasterKey, resolveMasterKey } from '../src/index.js';

const quiet: Logger & { warnings: number } = {
  warnings: 0,
  debug() {},
  info() {},
  warn() {
    quiet.warnings++;
  },
  error() {},
};

describe('resolveMasterKey', () => {
  it('returns the configured ring as is', () => {
    const ring = parseMasterKey(Buffer.alloc(32, 3).toString('base64'));
    expect(resolveMasterKey({ masterKey: ring, dataDir: '/nonexistent' })).toBe(ring);
  });

  it('creates a 0600 development key file once, with a warning, and reuses it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'authsec-key-')), 'data');
    const before = quiet.warnings;
    const first = resolveMasterKey({ masterKey: undefined, dataDir: dir, development: true, logger: quiet });
    expect(quiet.warnings).toBe(before + 1);
    expect(statSync(join(dir, 'master.key')).mode & 0o777).toBe(0o600);
    const second = resolveMasterKey({ masterKey: undefined, dataDir: dir, development: true, logger: quiet });
    expect(second.keys.get(second.activeKid)).toEqual(first.keys.get(first.activeKid));
  });

  it('refuses to invent a key in production', () => {
    let error: AuthSecError | undefined;
    try {
      resolveMasterKey({ masterKey: undefined, dataDir: tmpdir(), development: false });
    } catch (e) {
      error = e as AuthSecError;
    }
    expect(error?.code).toBe('CONFIG_INVALID');
    expect(error?.message).toContain('AUTHSEC_MASTER_KEY');
  });

  it('names the key file when it is corrupt', () => {
    const dir = mkdtempSync(join(tmpdir(), 'authsec-key-'));
    writeFileSync(join(dir, 'master.key'), 'not-a-key');
    let error: AuthSecError | undefined;
    try {
      resolveMasterKey({ masterKey: undefined, dataDir: dir, development: true, logger: quiet });
    } catch (e) {
      error = e as AuthSecError;
    }
    expect(error?.code).toBe('CONFIG_INVALID');
    expect(error?.message).toContain('master.key');
    expect(readFileSync(join(dir, 'master.key'), 'utf8')).toBe('not-a-key');
  });
});
