import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type AuditEvent, createJsonLinesAuditSink, digestArguments } from '../src/index.js';

const event: AuditEvent = {
  time: '2026-01-01T00:00:00.000Z',
  action: 'tool.call',
  decision: 'allow',
  subject: 'u1',
  tenantId: 'acme-corp',
  clientId: undefined,
  target: 'hello',
  reason: undefined,
  failed: undefined,
  argumentsDigest: digestArguments({ b: 1, a: [2, { d: 3, c: 4 }] }),
  latencyMicros: 3,
};

describe('audit', () => {
  it('digests arguments independently of key order', () => {
    expect(digestArguments({ a: 1, b: { c: 2, d: 3 } })).toBe(digestArguments({ b: { d: 3, c: 2 }, a: 1 }));
    expect(digestArguments({ a: 1 })).not.toBe(digestArguments({ a: 2 }));
    expect(digestArguments({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('digests an empty argument object as the SHA-256 of {}, and tells it apart from other values', () => {
    const empty = createHash('sha256').update('{}').digest('hex');
    expect(digestArguments({})).toBe(empty);
    // Inherited keys are not arguments (as for any object: only own keys are digested).
    expect(digestArguments(Object.create({ inherited: 1 }))).toBe(empty);
    expect(digestArguments([])).toBe(createHash('sha256').update('[]').digest('hex'));
    expect(digestArguments({ a: undefined })).not.toBe(empty);
    expect(digestArguments(null)).not.toBe(empty);
  });

  it('writes JSON lines in batches and on flush', async () => {
    const chunks: string[] = [];
    const sink = createJsonLinesAuditSink({ stream: { write: (c: string) => chunks.push(c) }, batchSize: 2 });
    sink.write(event);
    expect(chunks).toHaveLength(0);
    sink.write(event);
    expect(chunks).toHaveLength(1);
    sink.write(event);
    await sink.close();
    const lines = chunks.join('').trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: 'audit', action: 'tool.call', target: 'hello' });
  });
});
