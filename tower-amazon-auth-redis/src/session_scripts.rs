//! The Lua scripts of sign-in's sessions. Each touches the keys of one session (one cluster
//! slot) and runs atomically, which is what keeps a write from undoing a logout: the tombstone
//! is checked in the same step.

use redis::Script;

/// Reads a session's record, unless the session has ended.
///
/// `KEYS`: the record, the tombstone. Returns the record, or nil.
pub(crate) fn load() -> Script {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
return redis.call('GET', KEYS[1])
",
    )
}

/// Writes a session's record for `ARGV[2]` ms, unless the session has ended.
///
/// `KEYS`: the record, the tombstone. `ARGV`: the value, its life in ms. Returns 1 when
/// written, 0 when a tombstone stood in the way.
pub(crate) fn save() -> Script {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
}

/// Extends a session's record by `ARGV[1]` ms, unless the session has ended or its record is
/// gone (its idle life over).
///
/// `KEYS`: the record, the tombstone. `ARGV`: the new life in ms. Returns 1 when extended, 0
/// otherwise.
pub(crate) fn touch() -> Script {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
",
    )
}

/// Ends a session: the tombstone (never shortened), the record deleted, the message
/// published (a classic `PUBLISH`, which reaches every node's subscribers).
///
/// `KEYS`: the record, the tombstone. `ARGV`: the tombstone's life in ms, the channel, the
/// message.
pub(crate) fn end() -> Script {
    Script::new(
        r"
local life = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[2]) < life then redis.call('SET', KEYS[2], '1', 'PX', life) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
",
    )
}
