//! The Lua scripts of the fleet level. Each runs atomically in Redis, which is what keeps a
//! fill from undoing a revocation: the tombstones are checked in the same step as the write.
//! Keys are passed as `KEYS` (so the scripts stay correct if a proxy routes by key), the
//! counts of each kind of key as the first arguments.

use redis::Script;

/// A miss's read: the tombstones first, then the verdicts (current secret first), then,
/// when `ARGV[4]` > 0, the fleet lock of the verification.
///
/// `KEYS`: `nt` tombstones, `nv` verdicts, the lock. `ARGV`: `nt`, `nv`, this instance's lock
/// token, the lock's life in ms (0: do not lock).
///
/// Returns `{1, pttl}` revoked (for `pttl` more ms), `{2, pttl, value, i}` a verdict under the
/// `i`-th secret, `{3}` nothing and the lock is ours, `{4}` nothing and another instance holds
/// the lock, `{0}` nothing (not locking).
pub(crate) fn read() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local nv = tonumber(ARGV[2])
for i = 1, nt do
  local left = redis.call('PTTL', KEYS[i])
  if left ~= -2 then return {1, left} end
end
for i = nt + 1, nt + nv do
  local value = redis.call('GET', KEYS[i])
  if value then return {2, redis.call('PTTL', KEYS[i]), value, i - nt} end
end
if tonumber(ARGV[4]) > 0 then
  if redis.call('SET', KEYS[nt + nv + 1], ARGV[3], 'NX', 'PX', ARGV[4]) then return {3} end
  return {4}
end
return {0}
",
    )
}

/// A fill: writes a verdict unless the token is revoked, and releases this instance's lock.
///
/// `KEYS`: `nt` tombstones, the verdict, the lock. `ARGV`: `nt`, the value, its life in ms,
/// this instance's lock token. Returns 1 when written, 0 when a tombstone stood in the way.
pub(crate) fn fill() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local lock = KEYS[nt + 2]
local function release()
  if redis.call('GET', lock) == ARGV[4] then redis.call('DEL', lock) end
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

/// `revoke` and `invalidate`: writes the tombstones (never shortening one), deletes the
/// verdicts, publishes the messages.
///
/// `KEYS`: `nt` tombstones, then verdicts. `ARGV`: `nt`, the tombstones' life in ms, the
/// channel, then the messages.
pub(crate) fn forget() -> Script {
    Script::new(
        r"
local nt = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
for i = 1, nt do
  if redis.call('PTTL', KEYS[i]) < life then redis.call('SET', KEYS[i], '1', 'PX', life) end
end
for i = nt + 1, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 4, #ARGV do redis.call('PUBLISH', ARGV[3], ARGV[i]) end
return 1
",
    )
}
