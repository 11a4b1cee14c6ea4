import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAuthSecError } from '@authsec/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createSessionIdBinding } from '../../src/login/session-binding.js';

const root = mkdtempSync(join(tmpdir(), 'authsec-binding-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SESSION = 'a'.repeat(43);

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

describe('session_id bound to its data folder', () => {
  it('creates a 0600 key file and round-trips its own ids', () => {
    const file = join(root, 'one', 'session-id.key');
    const binding = createSessionIdBinding(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const wrapped = binding.wrap(SESSION);
    expect(wrapped.startsWith(`${SESSION}.`)).toBe(true);
    expect(binding.unwrap(wrapped)).toBe(SESSION);
    // Another process on the same folder uses the same key.
    expect(createSessionIdBinding(file).unwrap(wrapped)).toBe(SESSION);
  });

  it("refuses another folder's id, a tampered MAC and a bare id with PERMISSION_DENIED", () => {
    const mine = createSessionIdBinding(join(root, 'two', 'session-id.key'));
    const theirs = createSessionIdBinding(join(root, 'three', 'session-id.key'));
    const foreign = theirs.wrap(SESSION);
    const [, mac] = foreign.split('.') as [string, string];
    for (const presented of [foreign, `${SESSION}.${mac.slice(1)}x`, SESSION, `${'b'.repeat(43)}.${mac}`]) {
      const error = refusal(() => mine.unwrap(presented));
      expect(isAuthSecError(error) && error.code).toBe('PERMISSION_DENIED');
      expect(isAuthSecError(error) && error.details.reason).toBe('session_binding');
    }
  });

  it('narrows a key file readable by others to 0600, and refuses a damaged one', () => {
    const file = join(root, 'four', 'session-id.key');
    createSessionIdBinding(file);
    chmodSync(file, 0o644);
    createSessionIdBinding(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(file, 'short');
    const error = refusal(() => createSessionIdBinding(file));
    expect(isAuthSecError(error) && error.code).toBe('CONFIG_INVALID');
  });
});
