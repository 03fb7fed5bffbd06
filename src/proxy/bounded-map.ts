/**
 * Insert into a Map used as a bounded cache: when a new key would exceed `max`, the oldest insertion is
 * dropped first (a Map iterates in insertion order). Shared by the proxy's in-process caches (verified
 * tokens, identity assertions, session bindings).
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (!map.has(key) && map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
