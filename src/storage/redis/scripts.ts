/**
 * Lua scripts of the Redis back-end. Every script touches exactly ONE key, so each is atomic on
 * standalone, Sentinel and Cluster alike (Cluster refuses scripts whose keys span slots).
 *
 * A record is one hash: `v` = the JSON value, `e` = absolute expiry in ms (absent: none), `c` = consumedAt
 * in ms (absent: not consumed), `i` = JSON array of index tags. Its lifetime is the key's native TTL
 * (PEXPIRE); `e` only reports it and guards against a Redis clock running behind ours.
 *
 * Scripts never return Lua booleans (RESP2 and RESP3 convert them differently): numbers and strings only.
 */

/**
 * KEYS[1] record. ARGV: value, expiresAt ('' = none), ttlMs ('0' = none), tags JSON, onlyIfAbsent ('1'/'0').
 * Returns {wrote (1/0), previous tags JSON or ''}. Replacing drops `c` (consumedAt) with the old hash.
 */
export const SET = `
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {0, ''} end
local old = redis.call('HGET', KEYS[1], 'i')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'i', ARGV[4])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'e', ARGV[2]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, old or ''}
`;

/** KEYS[1] record. ARGV: now. First caller on a live, unconsumed record sets `c` and gets 1; TTL is kept. */
export const CONSUME = `
local r = redis.call('HMGET', KEYS[1], 'v', 'e', 'c')
if not r[1] or r[3] then return 0 end
if r[2] and tonumber(r[2]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1])
return 1
`;

/**
 * KEYS[1] record. ARGV: now, wantValue ('1' for take, '0' for delete). Atomic get+delete. Returns
 * {live (1/0), value or '', tags JSON or ''}.
 */
export const TAKE = `
local e = redis.call('HGET', KEYS[1], 'e')
local i = redis.call('HGET', KEYS[1], 'i')
local v = false
if ARGV[2] == '1' then v = redis.call('HGET', KEYS[1], 'v') end
if redis.call('DEL', KEYS[1]) == 0 then return {0, '', ''} end
if e and tonumber(e) <= tonumber(ARGV[1]) then return {0, '', i or ''} end
return {1, v or '', i or ''}
`;

/**
 * KEYS[1] record. ARGV: tag, now. Deletes the record only if it still carries `tag` (its index-set
 * membership may be stale). Returns {deleted-live (1/0), tags JSON or ''}.
 */
export const DELETE_IF_TAGGED = `
local r = redis.call('HMGET', KEYS[1], 'i', 'e')
if not r[1] then return {0, ''} end
local ok, tags = pcall(cjson.decode, r[1])
if not ok or type(tags) ~= 'table' then return {0, ''} end
for _, t in ipairs(tags) do
  if t == ARGV[1] then
    redis.call('DEL', KEYS[1])
    if r[2] and tonumber(r[2]) <= tonumber(ARGV[2]) then return {0, r[1]} end
    return {1, r[1]}
  end
end
return {0, ''}
`;

/**
 * KEYS[1] index set. ARGV: member, ttlMs ('0' = the member never expires). Adds the member and stretches
 * the set's TTL to cover its longest-lived member; a member without TTL makes the set persistent.
 */
export const INDEX_ADD = `
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl <= 0 then redis.call('PERSIST', KEYS[1]) return 1 end
local cur = redis.call('PTTL', KEYS[1])
if existed == 0 or (cur >= 0 and cur < ttl) then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`;
