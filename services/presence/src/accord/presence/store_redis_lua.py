"""The Lua scripts of the Redis presence store (``accord.presence.store_redis``).

Each script that changes presence runs with ``COMMON`` prepended: it checks,
writes and publishes the resulting event atomically, using the Redis server's
clock. Keys are built from the prefix passed in ``ARGV``.
"""

# Helpers prepended to every script that changes presence.
COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function event(room, kind, peer, reason)
  local text = '{"room":' .. cjson.encode(room) .. ',"kind":"' .. kind .. '"'
  if peer then text = text .. ',"peer":' .. peer end
  if reason then text = text .. ',"reason":"' .. reason .. '"' end
  return text .. '}'
end
local function remove(p, sid, room, reason)
  local room_key = p .. 'room:' .. room
  local peer = redis.call('HGET', room_key, sid)
  redis.call('HDEL', room_key, sid)
  redis.call('ZREM', p .. 'members:' .. room, sid)
  redis.call('SREM', p .. 'session:' .. sid, room)
  if not peer then return nil end
  local left = event(room, 'leave', peer, reason)
  redis.call('PUBLISH', p .. room, left)
  local user = redis.call('HGET', p .. 'session_users', sid)
  local users_key = p .. 'users:' .. room
  if user and redis.call('HINCRBY', users_key, user, -1) <= 0 then
    redis.call('HDEL', users_key, user)
    redis.call('PUBLISH', p .. room, event(room, 'user_offline', peer, reason))
  end
  return left
end
local function forget(p, sid)
  local user = redis.call('HGET', p .. 'session_users', sid)
  if user and redis.call('HINCRBY', p .. 'users', user, -1) <= 0 then
    redis.call('HDEL', p .. 'users', user)
  end
  redis.call('HDEL', p .. 'session_users', sid)
  redis.call('DEL', p .. 'session:' .. sid)
  redis.call('HDEL', p .. 'sessions', sid)
  redis.call('ZREM', p .. 'deadlines', sid)
end
"""

# ARGV: prefix, room, session id, peer JSON, edge id, ttl ms, max rooms, user key.
# Returns 1 joined, 2 re-joined (state replaced), 0 too many rooms, -1 another user's session.
JOIN = """
local p, room, sid, peer, edge = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl, max_rooms, user = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local room_key = p .. 'room:' .. room
local session_key = p .. 'session:' .. sid
local known = redis.call('HGET', p .. 'session_users', sid)
if known and known ~= user then return -1 end
local rejoined = redis.call('HEXISTS', room_key, sid) == 1
if not rejoined and redis.call('SCARD', session_key) >= max_rooms then return 0 end
redis.call('HSET', room_key, sid, peer)
redis.call('ZADD', p .. 'members:' .. room, 0, sid)
redis.call('SADD', session_key, room)
redis.call('HSET', p .. 'sessions', sid, edge)
redis.call('ZADD', p .. 'deadlines', now_ms() + ttl, sid)
if not known then
  redis.call('HSET', p .. 'session_users', sid, user)
  redis.call('HINCRBY', p .. 'users', user, 1)
end
if rejoined then
  redis.call('PUBLISH', p .. room, event(room, 'update', peer, nil))
  return 2
end
redis.call('PUBLISH', p .. room, event(room, 'join', peer, nil))
if redis.call('HINCRBY', p .. 'users:' .. room, user, 1) == 1 then
  redis.call('PUBLISH', p .. room, event(room, 'user_online', peer, nil))
end
return 1
"""

# ARGV: prefix, room, session id, state JSON, ttl ms. Returns the new peer JSON or nil.
UPDATE = """
local p, room, sid, state, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local room_key = p .. 'room:' .. room
local text = redis.call('HGET', room_key, sid)
if not text then return false end
local peer = cjson.decode(text)
peer['state'] = state
text = cjson.encode(peer)
redis.call('HSET', room_key, sid, text)
redis.call('ZADD', p .. 'deadlines', now_ms() + ttl, sid)
redis.call('PUBLISH', p .. room, event(room, 'update', text, nil))
return text
"""

# ARGV: prefix, session id, room ('' for every room), reason.
# Returns {the rooms left, their leave events}.
LEAVE = """
local p, sid, room, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local session_key = p .. 'session:' .. sid
local rooms = {}
if room == '' then
  rooms = redis.call('SMEMBERS', session_key)
  table.sort(rooms)
elseif redis.call('SISMEMBER', session_key, room) == 1 then
  rooms = {room}
end
local left = {}
for _, r in ipairs(rooms) do
  local e = remove(p, sid, r, reason)
  if e then left[#left + 1] = e end
end
if #rooms > 0 and redis.call('SCARD', session_key) == 0 then forget(p, sid) end
return {rooms, left}
"""

# ARGV: prefix, edge id, ttl ms, session ids... Returns the unknown session ids.
HEARTBEAT = """
local p, edge = ARGV[1], ARGV[2]
local deadline = now_ms() + tonumber(ARGV[3])
local sessions = p .. 'sessions'
local unknown = {}
for i = 4, #ARGV do
  local sid = ARGV[i]
  if redis.call('HEXISTS', sessions, sid) == 1 then
    redis.call('ZADD', p .. 'deadlines', deadline, sid)
    if edge ~= '' then redis.call('HSET', sessions, sid, edge) end
  else
    unknown[#unknown + 1] = sid
  end
end
return unknown
"""

# ARGV: prefix, batch size. Returns {sessions expired, leave events published, those events}.
SWEEP = """
local p, limit = ARGV[1], tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', p .. 'deadlines', '-inf', now_ms(), 'LIMIT', 0, limit)
local leaves = 0
local left = {}
for _, sid in ipairs(expired) do
  local rooms = redis.call('SMEMBERS', p .. 'session:' .. sid)
  table.sort(rooms)
  for _, room in ipairs(rooms) do
    local e = remove(p, sid, room, 'timeout')
    if e then left[#left + 1] = e end
    leaves = leaves + 1
  end
  forget(p, sid)
end
return {#expired, leaves, left}
"""

# ARGV: prefix, room, cursor, limit (0: all).
# Returns {count, next cursor, {peer JSON...}, user count}.
LIST = """
local p, room, cursor, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local members = p .. 'members:' .. room
local count = redis.call('ZCARD', members)
local users = redis.call('HLEN', p .. 'users:' .. room)
local min = '-'
if cursor ~= '' then min = '(' .. cursor end
local ids
if limit == 0 then
  ids = redis.call('ZRANGEBYLEX', members, min, '+')
else
  ids = redis.call('ZRANGEBYLEX', members, min, '+', 'LIMIT', 0, limit + 1)
end
local n = #ids
local next_cursor = ''
if limit > 0 and n > limit then
  n = limit
  next_cursor = ids[limit]
end
local room_key = p .. 'room:' .. room
local peers = {}
for i = 1, n do peers[#peers + 1] = redis.call('HGET', room_key, ids[i]) end
return {count, next_cursor, peers, users}
"""

# ARGV: prefix, room. Returns {sessions, users}.
COUNTS = """
local p, room = ARGV[1], ARGV[2]
return {redis.call('ZCARD', p .. 'members:' .. room), redis.call('HLEN', p .. 'users:' .. room)}
"""
