import { hasUnsafeDisplayChars } from '@authsec/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutput, formatTable, visible } from '../src/output.js';
import { cli, collector, ENGINES, type Engine, input, json } from './helpers.js';

// What a spoofed identifier looks like: U+202E reverses what follows, U+2066 opens an isolate, U+200B hides.
const SPOOFED = 'ad\u202enimda\u2066x\u200by';
const ESCAPED = 'ad\\u202enimda\\u2066x\\u200by';

function rawUnsafe(text: string): boolean {
  // Line feeds separate lines; anything else unsafe must never reach a terminal raw.
  return hasUnsafeDisplayChars(text.replaceAll('\n', ''));
}

describe('visible (every writer of the CLI goes through it)', () => {
  it('escapes exactly the characters core refuses in identifiers, across the whole BMP', () => {
    for (let code = 0; code <= 0xffff; code++) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const c = String.fromCharCode(code);
      const unsafe = hasUnsafeDisplayChars(c);
      expect(visible(c) !== c, `U+${code.toString(16).padStart(4, '0')}`).toBe(unsafe);
      if (unsafe) expect(visible(c)).toBe(`\\u${code.toString(16).padStart(4, '0')}`);
    }
  });

  it('escapes bidirectional controls and zero-width characters in lines, tables, notes and JSON', () => {
    const stdout = collector();
    const stderr = collector();
    const out = createOutput(stdout, stderr);
    out.line(`subject ${SPOOFED}`);
    out.table(
      ['NAME', 'SUBJECT'],
      [
        [SPOOFED, 'b'],
        ['plain', SPOOFED],
      ],
    );
    out.note(`note ${SPOOFED}`);
    out.json({ name: SPOOFED, nested: [{ sub: '\u2028\u0085\ufeff' }] });
    expect(rawUnsafe(stdout.text)).toBe(false);
    expect(rawUnsafe(stderr.text)).toBe(false);
    const lines = stdout.text.split('\n');
    expect(lines[0]).toBe(`subject ${ESCAPED}`);
    expect(lines[1]).toMatch(/^NAME\s+SUBJECT$/);
    expect(lines[2]).toBe(`${ESCAPED}  b`);
    // Columns align on what is shown, the escaped text.
    expect(lines[3]).toBe(`${'plain'.padEnd(ESCAPED.length)}  ${ESCAPED}`);
    expect(stderr.text).toBe(`note ${ESCAPED}\n`);
    // JSON stays valid and means the same value: only the way the characters are written changes.
    expect(JSON.parse(lines[4]!)).toEqual({ name: SPOOFED, nested: [{ sub: '\u2028\u0085\ufeff' }] });
    expect(lines[4]).toContain(ESCAPED);
  });

  it('formatTable escapes every cell', () => {
    expect(formatTable(['A'], [[SPOOFED]]).join('\n')).toBe(`A\n${ESCAPED}`);
  });
});

describe.each(ENGINES)('stored rows with spoofing characters are printed escaped ($name)', ({ create }) => {
  let engine: Engine;
  const run = (args: readonly string[], stdin?: string) =>
    cli(args, engine.env, stdin === undefined ? {} : { stdin: input(stdin) });
  const ok = async (args: readonly string[], stdin?: string) => {
    const result = await run(args, stdin);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result;
  };

  beforeAll(async () => {
    engine = await create();
    await ok(['migrate']);
    await ok(['tenant', 'create', 'acme']);
    await ok(['role', 'add', 'admin', '--tenant', 'acme']);
    await ok(['service', 'set', 'payroll', '--tenant', 'acme'], 'value-1');
    // Rows written before identifiers were checked, or by hand: below the API.
    const sql = await engine.openSql();
    try {
      await sql.query('ALTER TABLE "tenant_acme".audit_events DISABLE TRIGGER USER');
      await sql.query(`UPDATE "tenant_acme".audit_events SET subject = $1, target = $2 WHERE seq = 1`, [
        SPOOFED,
        `role add ${SPOOFED}`,
      ]);
      await sql.query('ALTER TABLE "tenant_acme".audit_events ENABLE TRIGGER USER');
      await sql.query(`UPDATE "tenant_acme".service_secrets SET name = $1 WHERE name = 'payroll'`, [SPOOFED]);
    } finally {
      await sql.close();
    }
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('audit tail prints the subject and target escaped, as text and as JSON', async () => {
    const text = await ok(['audit', 'tail', '--tenant', 'acme']);
    expect(rawUnsafe(text.stdout)).toBe(false);
    expect(text.stdout).toContain(ESCAPED);
    expect(text.stdout).toContain(`role add ${ESCAPED}`);

    const asJson = await ok(['audit', 'tail', '--tenant', 'acme', '--json']);
    expect(rawUnsafe(asJson.stdout)).toBe(false);
    const events = json<{ events: { seq: number; subject: string }[] }>(asJson).events;
    expect(events.find((e) => e.seq === 1)?.subject).toBe(SPOOFED);
  });

  it('audit tail --follow prints them escaped too', async () => {
    const stdout = collector();
    const stop = new AbortController();
    const pending = cli(['audit', 'tail', '--tenant', 'acme', '--follow'], engine.env, {
      signal: stop.signal,
      stdout,
    });
    for (let i = 0; i < 200 && !stdout.text.includes(ESCAPED); i++)
      await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    expect((await pending).code).toBe(0);
    expect(stdout.text).toContain(ESCAPED);
    expect(rawUnsafe(stdout.text)).toBe(false);
  });

  it('service list prints the name escaped, as text and as JSON', async () => {
    const text = await ok(['service', 'list', '--tenant', 'acme']);
    expect(rawUnsafe(text.stdout)).toBe(false);
    expect(text.stdout).toContain(ESCAPED);
    const asJson = await ok(['service', 'list', '--tenant', 'acme', '--json']);
    expect(rawUnsafe(asJson.stdout)).toBe(false);
    expect(json<{ services: { name: string }[] }>(asJson).services.map((s) => s.name)).toEqual([SPOOFED]);
  });

  it('error messages that repeat a name are escaped too, as text and as JSON', async () => {
    for (const extra of [[], ['--json']]) {
      const result = await run(['service', 'get', `gone${SPOOFED}`, '--tenant', 'acme', ...extra]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(ESCAPED);
      expect(rawUnsafe(result.stderr)).toBe(false);
    }
  });

  it('refuses to store a new service under such a name', async () => {
    const result = await run(['service', 'set', `new${SPOOFED}`, '--tenant', 'acme'], 'value-2');
    expect(result.code).not.toBe(0);
    expect(rawUnsafe(result.stdout + result.stderr)).toBe(false);
  });
});
