import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const examplesDir = new URL('test/readme-examples/', root);

// The README's TypeScript examples are the files in test/readme-examples, which `tsc` type-checks against the
// real API; this test keeps the two identical (with the package name in place of the relative import).
describe('README examples', () => {
  const blocks = [...readme.matchAll(/<!-- example: (\S+) -->\n\n```ts\n([\s\S]*?)\n```/g)];

  it('are all marked with their source file', () => {
    const fenced = readme.match(/```ts\n/g) ?? [];
    expect(blocks.length).toBe(fenced.length);
    const files = readdirSync(examplesDir).filter((f) => f.endsWith('.ts'));
    expect(blocks.map((b) => b[1]).sort()).toEqual(files.sort());
  });

  it.each(blocks.map((b) => [b[1]!, b[2]!]))('%s matches its type-checked source', (file, code) => {
    const source = readFileSync(new URL(file, examplesDir), 'utf8')
      .replaceAll("'../../src/index.js'", "'@authsec/mcp'")
      .replaceAll("'../../src/v2/index.js'", "'@authsec/mcp/v2'")
      .trimEnd();
    expect(code).toBe(source);
  });
});
