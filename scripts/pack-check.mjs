#!/usr/bin/env node
/**
 * `pnpm pack:check`: checks what `pnpm publish` would upload for every published package (each packages/* whose
 * package.json is not `"private": true`). Run it after `pnpm build`; it needs no network.
 *
 * For each package it packs the tarball with `pnpm pack` (which rewrites `workspace:` ranges as publishing does)
 * into a temporary folder, then, on that tarball:
 * - publint;
 * - arethetypeswrong with the `esm-only` profile (the packages are ESM only on purpose, so the CommonJS and
 *   node10 resolutions are not checked). It reads the same tarball instead of `attw --pack <dir>`, which would run
 *   `npm pack` and leave a .tgz in the package folder while it runs;
 * - its own assertions on the unpacked tarball: a LICENSE with the Apache License 2.0 text (the same as the
 *   repository's LICENSE); every source map's and declaration map's `sources` ship in the tarball, and every
 *   `sourceMappingURL` names a map that ships; `repository` (git, with this package's `directory`), `homepage`
 *   and `bugs`; runtime `dependencies` and `peerDependencies` are ranges, not exact pins, with no `workspace:` left;
 *   every `bin` ships and starts with a `#!` line.
 *
 * Ends with one line per package and exits 1 if any check failed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const EXACT_VERSION = /^=?v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;

function publishedPackages() {
  const dir = join(root, 'packages');
  return readdirSync(dir)
    .filter((name) => existsSync(join(dir, name, 'package.json')))
    .map((name) => ({ folder: `packages/${name}`, dir: join(dir, name) }))
    .map((p) => ({ ...p, manifest: JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8')) }))
    .filter((p) => p.manifest.private !== true)
    .sort((a, b) => a.folder.localeCompare(b.folder));
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) return { status: 1, stdout: '', stderr: String(result.error) };
  return { status: result.status ?? 1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

function walk(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}

const inside = (base, path) => path === base || path.startsWith(base + sep);

/** Assertions on the unpacked tarball; returns the problems found. */
function checkContents(pkg, unpacked) {
  const problems = [];
  const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8'));
  const files = walk(unpacked);
  const shipped = new Set(files);

  // LICENSE: present, Apache-2.0, the repository's own text.
  if (manifest.license !== 'Apache-2.0')
    problems.push(`license is ${JSON.stringify(manifest.license)}, not Apache-2.0`);
  const license = join(unpacked, 'LICENSE');
  if (!existsSync(license)) {
    problems.push('no LICENSE in the tarball');
  } else {
    const text = readFileSync(license, 'utf8');
    for (const phrase of ['Apache License', 'Version 2.0, January 2004', 'END OF TERMS AND CONDITIONS']) {
      if (!text.includes(phrase)) problems.push(`LICENSE does not contain "${phrase}"`);
    }
    const rootLicense = join(root, 'LICENSE');
    if (existsSync(rootLicense) && readFileSync(rootLicense, 'utf8') !== text) {
      problems.push("LICENSE differs from the repository's LICENSE");
    }
  }

  // Provenance and links.
  const repo = manifest.repository;
  if (!repo || typeof repo !== 'object' || repo.type !== 'git' || !/^git\+https:\/\//.test(repo.url ?? '')) {
    problems.push('repository must be { "type": "git", "url": "git+https://…", "directory": … }');
  } else if (repo.directory !== pkg.folder) {
    problems.push(`repository.directory is ${JSON.stringify(repo.directory)}, not "${pkg.folder}"`);
  }
  if (typeof manifest.homepage !== 'string' || !manifest.homepage.startsWith('https://')) {
    problems.push('no https homepage');
  }
  if (!manifest.bugs || typeof manifest.bugs.url !== 'string') problems.push('no bugs.url');

  // Runtime ranges: users must be able to take a patch release of a dependency without a release of ours.
  for (const field of ['dependencies', 'peerDependencies']) {
    for (const [name, spec] of Object.entries(manifest[field] ?? {})) {
      if (spec.startsWith('workspace:')) problems.push(`${field}.${name} is still ${spec} in the tarball`);
      else if (EXACT_VERSION.test(spec))
        problems.push(`${field}.${name} is pinned exactly (${spec}); use a range`);
    }
  }

  // Source maps and declaration maps: everything they point at ships.
  for (const file of files) {
    const rel = relative(unpacked, file);
    if (file.endsWith('.map')) {
      let map;
      try {
        map = JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        problems.push(`${rel} is not JSON`);
        continue;
      }
      const base = resolve(dirname(file), map.sourceRoot ?? '');
      (map.sources ?? []).forEach((source, i) => {
        if (typeof map.sourcesContent?.[i] === 'string') return; // carries its source itself
        const target = resolve(base, source);
        if (!inside(unpacked, target) || !shipped.has(target)) {
          problems.push(`${rel} points at ${source}, which is not in the tarball`);
        }
      });
    } else if (/\.(?:[cm]?js|d\.[cm]?ts)$/.test(file)) {
      const match = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(file, 'utf8'));
      if (match && !match[1].startsWith('data:')) {
        const target = resolve(dirname(file), decodeURIComponent(match[1]));
        if (!shipped.has(target))
          problems.push(`${rel} names the map ${match[1]}, which is not in the tarball`);
      }
    }
  }

  // Executables.
  const bins = typeof manifest.bin === 'string' ? { [manifest.name]: manifest.bin } : (manifest.bin ?? {});
  for (const [name, target] of Object.entries(bins)) {
    const path = resolve(unpacked, target);
    if (!shipped.has(path)) problems.push(`bin ${name} (${target}) is not in the tarball`);
    else if (!readFileSync(path, 'utf8').startsWith('#!'))
      problems.push(`bin ${name} (${target}) has no #! line`);
  }
  return problems;
}

function checkPackage(pkg, work) {
  const name = pkg.manifest.name;
  const failures = [];
  console.log(`\n--- ${name} (${pkg.folder})`);
  if (!existsSync(join(pkg.dir, 'dist'))) {
    return [`no dist/ in ${pkg.folder}: run pnpm build first`];
  }
  const dest = join(work, pkg.folder.replaceAll('/', '-'));
  mkdirSync(dest, { recursive: true });
  const packed = run('pnpm', ['pack', '--pack-destination', dest, '--json'], { cwd: pkg.dir });
  let tarball;
  try {
    tarball = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('{'))).filename;
  } catch {
    tarball = undefined;
  }
  if (packed.status !== 0 || !tarball || !existsSync(tarball)) {
    console.log(packed.stdout, packed.stderr);
    return ['pnpm pack failed'];
  }
  console.log(`packed ${relative(work, tarball)} (${Math.round(statSync(tarball).size / 1024)} KiB)`);

  const publint = run(bin('publint'), ['run', tarball, '--pack', 'false'], { stdio: 'inherit' });
  if (publint.status !== 0) failures.push('publint reported errors');

  const attwArgs = [tarball, '--profile', 'esm-only', '--format', 'table-flipped', '--no-color'];
  const attw = run(bin('attw'), attwArgs, { stdio: 'inherit' });
  if (attw.status !== 0) failures.push('arethetypeswrong reported problems');

  const unpacked = join(dest, 'unpacked');
  mkdirSync(unpacked);
  const untar = run('tar', ['-xzf', tarball, '-C', unpacked]);
  if (untar.status !== 0) {
    failures.push(`could not unpack the tarball: ${untar.stderr.trim()}`);
    return failures;
  }
  const contents = checkContents(pkg, join(unpacked, 'package'));
  for (const problem of contents.slice(0, 20)) console.log(`tarball: ${problem}`);
  if (contents.length > 20) console.log(`tarball: … and ${contents.length - 20} more`);
  if (contents.length === 0)
    console.log('tarball contents: all good (LICENSE, maps, repository, ranges, bins)');
  else failures.push(`${contents.length} tarball content problem(s)`);
  return failures;
}

const packages = publishedPackages();
if (packages.length === 0) {
  console.log('pack:check: no published package found under packages/');
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), 'authsec-pack-check-'));
const results = [];
try {
  for (const pkg of packages) results.push({ name: pkg.manifest.name, failures: checkPackage(pkg, work) });
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log('\npack:check summary');
for (const { name, failures } of results) {
  console.log(failures.length === 0 ? `  ok    ${name}` : `  FAIL  ${name}: ${failures.join('; ')}`);
}
const failed = results.filter((r) => r.failures.length > 0).length;
console.log(
  `${results.length - failed} of ${results.length} packages passed publint, arethetypeswrong and the tarball checks`,
);
process.exit(failed === 0 ? 0 : 1);
