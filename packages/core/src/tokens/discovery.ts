import { FetchFailure, fetchJson, type HttpContext, isJsonObject } from './http.js';
import { fetchUrlProblem } from './url-policy.js';

/**
 * Metadata URLs tried for `issuer`, in order: OpenID Connect Discovery (appended), RFC 8414 (path inserted),
 * then OIDC with the path inserted (as the MCP authorization spec also lists it). Duplicates are dropped.
 */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const urls = [
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
  ];
  return [...new Set(urls)];
}

/**
 * Finds the `jwks_uri` of `issuer` from its metadata. A 4xx moves on to the next metadata URL; a network
 * failure, a timeout or a 5xx stops at once. The document's `issuer` must equal the configured one exactly
 * (OIDC Discovery §4.3, RFC 8414 §3.3), and its `jwks_uri` must pass the same URL policy as configured URLs.
 */
export async function discoverJwksUri(issuer: string, http: HttpContext): Promise<string> {
  for (const url of metadataUrls(issuer)) {
    let doc: unknown;
    try {
      doc = await fetchJson(url, http);
    } catch (error) {
      if (
        error instanceof FetchFailure &&
        error.status !== undefined &&
        error.status >= 400 &&
        error.status < 500
      ) {
        continue;
      }
      throw error;
    }
    if (!isJsonObject(doc)) throw new FetchFailure(`metadata at ${url} is not a JSON object`);
    if (doc.issuer !== issuer) throw new FetchFailure(`metadata at ${url} names a different issuer`);
    const problem = fetchUrlProblem(doc.jwks_uri);
    if (problem) throw new FetchFailure(`metadata at ${url}: jwks_uri ${problem}`);
    return doc.jwks_uri as string;
  }
  throw new FetchFailure('no authorization server metadata found for the issuer');
}
