import { createHash, randomBytes } from 'node:crypto';

interface StoredCookie {
  value: string;
  path: string;
}

/**
 * A minimal browser for driving the IdP with fetch: keeps cookies (by name and path, one host) and follows
 * redirects by hand, so a test sees each hop.
 */
export class Browser {
  readonly #cookies = new Map<string, StoredCookie>();

  cookieHeader(url: URL): string {
    return [...this.#cookies.entries()]
      .filter(([, cookie]) => url.pathname.startsWith(cookie.path))
      .map(([key, cookie]) => `${key.slice(0, key.indexOf('|'))}=${cookie.value}`)
      .join('; ');
  }

  #store(response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', val = ''] = attribute.split('=');
        if (key.toLowerCase() === 'path') path = val;
        if (key.toLowerCase() === 'expires' && Date.parse(val) < Date.now()) expired = true;
        if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      }
      const key = `${name}|${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { value, path });
    }
  }

  /** One request, no redirect following; cookies sent and stored. */
  async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(target);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.#store(response);
    return response;
  }

  /** A form POST (application/x-www-form-urlencoded). */
  post(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /**
   * Follows redirects within `origin` (GET after each hop). Returns the first response that is not a redirect
   * within the origin, and where it ended: `location` is set when the last hop points elsewhere.
   */
  async follow(
    first: Response,
    from: string | URL,
    origin: string,
  ): Promise<{ response: Response; url: URL; location?: URL }> {
    let response = first;
    let url = new URL(from);
    for (let hops = 0; hops < 10; hops++) {
      if (response.status < 300 || response.status >= 400) return { response, url };
      const location = new URL(response.headers.get('location') ?? '', url);
      await response.arrayBuffer();
      if (location.origin !== origin) return { response, url, location };
      url = location;
      response = await this.request(location);
    }
    throw new Error('too many redirects');
  }
}

/** A PKCE pair (RFC 7636, S256). */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The names of the `<input>` fields of the first `<form>` of an HTML page, and its action. */
export function formOf(html: string): { action: string; fields: Map<string, string> } {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error('no form on the page');
  const action = /action="([^"]*)"/i.exec(form[1] ?? '')?.[1] ?? '';
  const fields = new Map<string, string>();
  for (const input of (form[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const attributes = input[1] ?? '';
    const name = /name="([^"]*)"/i.exec(attributes)?.[1];
    if (name) fields.set(name, /value="([^"]*)"/i.exec(attributes)?.[1] ?? '');
  }
  return { action: action.replaceAll('&amp;', '&'), fields };
}
