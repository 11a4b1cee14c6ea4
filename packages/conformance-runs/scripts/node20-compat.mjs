// Node 20 compatibility hook for @modelcontextprotocol/conformance 0.1.16.
//
// The CLI bundle does `import { globSync } from "fs"`, an export that only exists
// from Node 22. The `server` command never calls it (only the results-comparison
// commands glob for checks.json), but the named import fails at link time on
// Node 20, so the CLI would not start at all. This hook rewrites exactly that one
// import in that one file to a stub that throws if it is ever called. Nothing
// else in the suite is touched. Used as: node --import ./scripts/node20-compat.mjs ...
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
const NEEDLE = 'globSync as o,';
export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.includes('@modelcontextprotocol/conformance/dist/index.js')) return result;
  const source = String(result.source);
  if (!source.includes(NEEDLE)) return result;
  const patched = source.replace(NEEDLE, '') +
    '\\nfunction o(){throw new Error("fs.globSync is not available on this Node version (conformance-runs node20-compat hook)")}';
  return { ...result, source: patched, shortCircuit: true };
}
`)}`,
  import.meta.url,
);
