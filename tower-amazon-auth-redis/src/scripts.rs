//! The Lua scripts of the fleet level. Each runs atomically in Redis, which is what keeps a
//! fill from undoing a revocation: the tombstones are checked in the same step as the write.
//! Keys are passed as `KEYS` (so the scripts stay correct if a proxy routes by key), the
//! counts of each kind of key as the first arguments.

use redis::Script;

/// A miss's read: the tombstones first, then the verdicts (current secret first), then,
/// when `ARGV[4]` > 0, the fleet lock of the verification. Every answer also carries the
/// token's fleet generation (empty when never bumped), which a fill must present unchanged.
///
/// `KEYS`: `nt` tombstones, `nv` verdicts, the lock, the generation. `ARGV`: `nt`, `nv`, this
/// instance's lock token, the lock's life in ms (0: do not lock).
///
/// Returns `{1, gen, pttl}` revoked (for `pttl` more ms), `{2, gen, pttl, value, i}` a verdict
/// under the `i`-th secret, `{3, gen}` nothing and the lock is ours, `{4, gen}` nothing and
/// another instance holds the lock, `{0, gen}` nothing (not locking).
pub(crate) fn read() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local nv = tonumber(ARGV[2])
local gen = redis.call('GET', KEYS[nt + nv + 2]) or ''
for i = 1, nt do
  local left = redis.call('PTTL', KEYS[i])
  if left ~= -2 then return {1, gen, left} end
end
for i = nt + 1, nt + nv do
  local value = redis.call('GET', KEYS[i])
  if value then return {2, gen, redis.call('PTTL', KEYS[i]), value, i - nt} end
end
if tonumber(ARGV[4]) > 0 then
  if redis.call('SET', KEYS[nt + nv + 1], ARGV[3], 'NX', 'PX', ARGV[4]) then return {3, gen} end
  return {4, gen}
end
return {0, gen}
",
    )
}

/// A fill: writes a verdict unless the token is revoked, or was invalidated or revoked since
/// the read that preceded its verification (its generation changed); releases this instance's
/// lock.
///
/// `KEYS`: `nt` tombstones, the verdict, the lock, the generation. `ARGV`: `nt`, the value,
/// its life in ms, this instance's lock token, the generation the read saw. Returns 1 when
/// written, 0 when a tombstone or a newer generation stood in the way.
pub(crate) fn fill() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local lock = KEYS[nt + 2]
local function release()
  if redis.call('GET', lock) == ARGV[4] then redis.call('DEL', lock) end
end
local gen = redis.call('GET', KEYS[nt + 3]) or ''
if gen ~= ARGV[5] then
  release()
  return 0
end
for i = 1, nt do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    release()
    return 0
  end
end
redis.call('SET', KEYS[nt + 1], ARGV[2], 'PX', ARGV[3])
release()
return 1
",
    )
}

/// Releases this instance's lock (its verification failed without a verdict).
///
/// `KEYS`: the lock. `ARGV`: this instance's lock token.
pub(crate) fn release() -> Script {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
",
    )
}

/// `revoke` and `invalidate`: writes the tombstones (never shortening one), bumps the
/// generations (each kept for as long as a value written under the old one could be accepted), deletes the
/// verdicts, publishes the messages.
///
/// `KEYS`: `nt` tombstones, `ng` generations, then verdicts. `ARGV`: `nt`, `ng`, the
/// tombstones' life in ms, the generations' life in ms, the channel, then the messages.
pub(crate) fn forget() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local ng = tonumber(ARGV[2])
local life = tonumber(ARGV[3])
for i = 1, nt do
  if redis.call('PTTL', KEYS[i]) < life then redis.call('SET', KEYS[i], '1', 'PX', life) end
end
for i = nt + 1, nt + ng do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
for i = nt + ng + 1, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 6, #ARGV do redis.call('PUBLISH', ARGV[5], ARGV[i]) end
return 1
",
    )
}
