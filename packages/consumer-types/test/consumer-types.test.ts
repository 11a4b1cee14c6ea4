/**
 * Every published entry, as a consumer sees it: its declarations typecheck with `skipLibCheck: false` (strict,
 * NodeNext), all together and each SDK line on its own (the v1 and v2 SDK lines side by side must not clash, e.g. two
 * augmentations of one global with different types, TS2717), and the v2 entry reaches neither the v1 SDK's code
 * nor its declarations, so a v2 server does not need `@modelcontextprotocol/sdk` installed.
 *
 * The consumer folder sits inside this package so that it resolves the packages the way an application's
 * `node_modules` would: through this package's dependencies, the published `exports` and the built `dist`.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(here, '..');
const packagesDir = resolve(pkgDir, '..');
const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc');
const work = mkdtempSync(join(pkgDir, '.consumer-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Entry {
  readonly specifier: string;
  readonly pkg: string;
}

/** Every entry of every published package (each packages/* not marked private), `./package.json` aside. */
function publishedEntries(): Entry[] {
  const entries: Entry[] = [];
  for (const folder of readdirSync(packagesDir).sort()) {
    const manifestPath = join(packagesDir, folder, 'package.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      name: string;
      private?: boolean;
      exports?: Record<string, unknown>;
    };
    if (manifest.private === true) continue;
    for (const key of Object.keys(manifest.exports ?? { '.': {} })) {
      if (key === './package.json') continue;
      entries.push({
        pkg: manifest.name,
        specifier: key === '.' ? manifest.name : `${manifest.name}${key.slice(1)}`,
      });
    }
  }
  return entries;
}

const ENTRIES = publishedEntries();

/**
 * Typechecks a consumer importing `entries` in a program of its own. `dom` adds the DOM library: the v1 SDK's
 * declarations name `HeadersInit`, which only the DOM library declares (an SDK defect a v1 consumer meets with
 * `skipLibCheck: false` whatever else it imports).
 */
function typecheck(
  name: string,
  entries: readonly Entry[],
  dom: boolean,
): { status: number | null; output: string } {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const lines = entries.map((entry, i) => `import * as e${i} from '${entry.specifier}';`);
  lines.push(`export const entries = [${entries.map((_, i) => `e${i}`).join(', ')}];`);
  writeFileSync(join(dir, 'consumer.ts'), `${lines.join('\n')}\n`);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2023',
        lib: dom ? ['ES2023', 'DOM'] : ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        types: ['node'],
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
      },
      files: ['consumer.ts'],
    }),
  );
  const run = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', timeout: 240_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.replaceAll(work, '<consumer>') };
}

describe('published declarations with skipLibCheck: false', () => {
  it('finds the published entries', () => {
    expect(ENTRIES.map((e) => e.specifier)).toEqual(
      expect.arrayContaining(['@authsec/core', '@authsec/core/postgres', '@authsec/mcp', '@authsec/mcp/v2']),
    );
  });

  // One program per entry would cost a tsc run each (tens of seconds here): the first program checks every
  // entry's declarations, the other two each SDK line on its own.
  const line = (mcpEntry: string) => (e: Entry) => e.specifier === mcpEntry || e.pkg === '@authsec/core';
  const programs: [title: string, name: string, entries: readonly Entry[], dom: boolean][] = [
    ['every entry of every package, in one program (v1 and v2 side by side)', 'all', ENTRIES, true],
    ['@authsec/mcp (the v1 line) with @authsec/core', 'v1-only', ENTRIES.filter(line('@authsec/mcp')), true],
    [
      '@authsec/mcp/v2 with @authsec/core, without the DOM library (nothing of the v1 SDK is reached)',
      'v2-only',
      ENTRIES.filter(line('@authsec/mcp/v2')),
      false,
    ],
  ];
  it.each(programs)('%s', (_title, name, entries, dom) => {
    const result = typecheck(name, entries, dom);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});

/** The bare specifiers a built module reaches through its relative imports (code, or declarations). */
function reached(file: string): Set<string> {
  const bare = new Set<string>();
  const seen = new Set<string>();
  const declarations = file.endsWith('.d.ts');
  const walk = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = readFileSync(path, 'utf8');
    const pattern = /(?:from\s*|import\s*\(\s*|^import\s+|\bimport\s+)['"]([^'"]+)['"]/gm;
    for (const match of text.matchAll(pattern)) {
      const specifier = match[1]!;
      if (specifier.startsWith('.')) {
        walk(resolve(dirname(path), declarations ? specifier.replace(/\.js$/, '.d.ts') : specifier));
      } else bare.add(specifier);
    }
  };
  walk(file);
  return bare;
}

describe('the SDK lines stay apart', () => {
  const require = createRequire(join(pkgDir, 'package.json'));
  const mcpDist = dirname(require.resolve('@authsec/mcp'));
  const sdkOf = (specifiers: Set<string>) =>
    [...specifiers]
      .filter((s) => s.startsWith('@modelcontextprotocol/'))
      .map((s) => s.split('/').slice(0, 2).join('/'));

  it('@authsec/mcp/v2 loads and declares nothing of the v1 SDK', () => {
    for (const file of ['v2/index.js', 'v2/index.d.ts']) {
      const sdks = new Set(sdkOf(reached(join(mcpDist, file))));
      expect([...sdks].sort(), file).toEqual(
        [
          '@modelcontextprotocol/server',
          ...(file.endsWith('.js') ? ['@modelcontextprotocol/node'] : []),
        ].sort(),
      );
    }
  });

  it('@authsec/mcp (the v1 line) loads and declares nothing of the v2 SDK', () => {
    for (const file of ['index.js', 'index.d.ts']) {
      const sdks = new Set(sdkOf(reached(join(mcpDist, file))));
      expect([...sdks], file).toEqual(['@modelcontextprotocol/sdk']);
    }
  });
});
