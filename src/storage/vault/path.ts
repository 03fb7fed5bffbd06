/**
 * Maps storage keys to Vault KV paths.
 *
 * A key is split after every `:` into path segments (`oidc:Client:abc` -> `oidc:` / `Client:` / `abc`),
 * so that records of one namespace share a Vault folder and `list(prefix)` only walks the folders the
 * prefix can reach. Every segment is then escaped: `[A-Za-z0-9-]` stay as they are, every other byte of
 * its UTF-8 form becomes `_XX` (upper-case hex), e.g. `oidc_3A/Client_3A/abc`, `Zo_C3_AB`. The result
 * needs no URL encoding, never contains `/`, `.` or `..`, and decodes back exactly. Splitting after the
 * colon (keeping it in the segment) means no segment is ever empty (`a::b` -> `a:` / `:` / `b`).
 *
 * Vault may hold a leaf and a folder with the same name (`p_3A` for key `p:` and `p_3A/` for `p:a`).
 */
const SAFE = /^[A-Za-z0-9-]$/;

export function encodeSegment(s: string): string {
  let out = '';
  for (const ch of s) {
    if (SAFE.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `_${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of encodeSegment; undefined for names we did not write (foreign entries in the folder). */
export function decodeSegment(s: string): string | undefined {
  if (!/^(?:[A-Za-z0-9-]|_[0-9A-F]{2})*$/.test(s)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < s.length;) {
    if (s[i] === '_') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(s.charCodeAt(i));
      i += 1;
    }
  }
  const text = Buffer.from(bytes).toString('utf8');
  return encodeSegment(text) === s ? text : undefined;
}

export function keySegments(key: string): string[] {
  return key.split(/(?<=:)/);
}

export function keyToPath(key: string): string {
  return keySegments(key).map(encodeSegment).join('/');
}
