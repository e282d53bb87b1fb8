-- stream-scorer: compare-and-set of contacts' states, with their alerts.
--
-- The worker reads states (HMGET v s, and GET of the log), applies events
-- with the reference engine, and calls this script to write the results.
-- Each contact is written only if nobody else wrote it since the read
-- (version check), and the alerts its change produced go into its outbox
-- in the same atomic step. One call may carry many contacts (all keys in
-- one slot on Redis Cluster).
--
-- For contact i (1-based), KEYS[3i-2] is its state hash (v = version,
-- s = the stored state, opaque here), KEYS[3i-1] its outbox list and
-- KEYS[3i] its log (a string: the awards and ids of a long history, which
-- a write appends to instead of sending again).
-- ARGV is, per contact in order: expected version ("0" for a new contact),
-- new stored state or "" when nothing changed, key TTL in ms, the change
-- to the log ("" leave it; "=" and the bytes to replace it with, none to
-- delete it; "+<length>:" and the bytes to append to a log of that length),
-- the number of alerts n, then the n alert JSON strings.
-- Returns, per contact, the version now held when written (unchanged when
-- nothing changed), 0 on a version conflict, -1 when the log to append to
-- is not the length the worker wrote (deleted or evicted on its own: the
-- worker writes it again whole). A conflict where Redis went back is told
-- apart: -2 when the contact expected is gone (expired, or lost), -3 when
-- Redis holds an older version than the one expected (writes it
-- acknowledged are gone: a failover, a restart that did not replay them).
-- -4 when the contact's keys were not left so by a worker (a key of another
-- type, a version that is no whole number below 2^53): damaged, this
-- contact fails alone. None of these writes anything. The alerts of this call are
-- the caller's to relay; older ones still in the outbox are another relay's
-- (the batch before, in flight) or the recovery's (see store.py).
--
-- Versions start from the server's clock in microseconds, not from 1, so
-- that a contact whose keys expired and were created again never repeats a
-- version a worker may still hold in memory.

-- Two passes: every contact is checked before anything is written, so that an
-- error in the checks (a refused command, a cluster that moved a slot) fails
-- the call whole, with nothing written.

-- A command's reply, or nil when the key holds another type than the worker
-- writes (WRONGTYPE: damaged by hand, or by another tool); any other error
-- ends the call, before any write.
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then
      return nil
    end
    return redis.error_reply(reply.err)
  end
  return reply
end

local todo = {}
local out = {}
local a = 1
for i = 1, #KEYS / 3 do
  local state, outbox, log = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local expected, body, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local change, n = ARGV[a + 3], tonumber(ARGV[a + 4])
  local first = a + 5
  a = first + n
  local op = string.sub(change, 1, 1)
  local logged = string.sub(change, 2)
  -- A key of another type, or a version that is no whole number below 2^53 - 1
  -- (Lua's numbers are doubles), was not left so by a worker: this contact's alone.
  local damaged = false
  local current = read('HGET', state, 'v')
  if type(current) == 'table' then
    return current  -- another error: the call fails, nothing written
  elseif current == nil then
    damaged = true
  else
    current = current or '0'
    damaged = not string.find(current, '^%d+$') or #current > 16
      or tonumber(current) >= 9007199254740991
    if not damaged and n > 0 then
      local head = read('LRANGE', outbox, 0, 0)
      if head == nil then
        damaged = true
      elseif head.err then
        return head
      end
    end
  end
  if damaged then
    out[i] = -4
  elseif current ~= expected then
    if current == '0' then
      out[i] = -2
    elseif expected ~= '0' and tonumber(current) < tonumber(expected) then
      out[i] = -3
    else
      out[i] = 0
    end
  else
    if op == '+' then
      local colon = string.find(change, ':', 2, true)
      local size = read('STRLEN', log)
      if size == nil then
        out[i] = -4
      elseif type(size) == 'table' then
        return size
      elseif size ~= tonumber(string.sub(change, 2, colon - 1)) then
        out[i] = -1
      end
      logged = string.sub(change, colon + 1)
    end
    if out[i] == nil then
      out[i] = current
      todo[#todo + 1] = {i, state, outbox, log, body, ttl, op, logged, first, n, current}
    end
  end
end

for _, t in ipairs(todo) do
  local i, state, outbox, log, body, ttl, op, logged, first, n, current =
    t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11]
  if body ~= '' then
    local version
    if current == '0' then
      local now = redis.call('TIME')
      version = string.format('%d', tonumber(now[1]) * 1000000 + tonumber(now[2]))
    else
      version = string.format('%d', tonumber(current) + 1)
    end
    redis.call('HSET', state, 'v', version, 's', body)
    redis.call('PEXPIRE', state, ttl)
    if op == '=' then
      if logged == '' then
        redis.call('DEL', log)
      else
        redis.call('SET', log, logged, 'PX', ttl)
      end
    elseif op == '+' then
      -- The log lives exactly as long as the state that counts its chunks.
      if logged ~= '' then
        redis.call('APPEND', log, logged)
      end
      redis.call('PEXPIRE', log, ttl)
    end
    if n > 0 then
      -- An outbox lives as long as its newest alert needs: a write without
      -- alerts leaves it alone (the relay empties it within seconds).
      for j = first, first + n - 1 do
        redis.call('RPUSH', outbox, ARGV[j])
      end
      redis.call('PEXPIRE', outbox, ttl)
    end
    out[i] = version
  end
end
return out
