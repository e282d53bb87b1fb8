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
-- type, or the version expected past 2^53 - 1): damaged, this contact fails
-- alone. None of these writes anything. The alerts of this call are
-- the caller's to relay; older ones still in the outbox are another relay's
-- (the batch before, in flight) or the recovery's (see store.py).
--
-- Versions start from the server's clock in microseconds, not from 1, so
-- that a contact whose keys expired and were created again never repeats a
-- version a worker may still hold in memory.

-- Two passes: every contact is checked before anything is written, so that an
-- error in the checks (a refused command, a cluster that moved a slot) fails
-- the call whole, with nothing written.
--
-- A key of another type than the worker writes (WRONGTYPE: damaged by hand, or
-- by another tool) is that contact's alone (-4); any other error ends the call.
-- The version compared is the worker's, which it read and checked (a whole
-- number below 2^53 - 1, as Lua's doubles count exactly) or wrote itself.

local function damaged(reply)
  if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then
    return true
  end
  error(reply)
end

local out = {}
local writes = {}
local starts = {}
local a = 1
for i = 1, #KEYS / 3 do
  local state, outbox, log = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local expected, change, n = ARGV[a], ARGV[a + 3], tonumber(ARGV[a + 4])
  starts[i] = a
  a = a + 5 + n
  local current = redis.pcall('HGET', state, 'v')
  if type(current) == 'table' then
    damaged(current)
    out[i] = -4
  else
    current = current or '0'
    if current ~= expected then
      local held = tonumber(current)
      if current == '0' then
        out[i] = -2
      elseif held and expected ~= '0' and held < tonumber(expected) then
        out[i] = -3
      else
        out[i] = 0
      end
    elseif current ~= '0' and not ((tonumber(current) or 2 ^ 53) < 9007199254740991) then
      out[i] = -4  -- a version past 2^53 - 1 would be written back unchanged
    else
      out[i] = current
      if n > 0 then
        local head = redis.pcall('LRANGE', outbox, 0, 0)
        if head.err and damaged(head) then
          out[i] = -4
        end
      end
      if out[i] == current and string.sub(change, 1, 1) == '+' then
        local colon = string.find(change, ':', 2, true)
        local size = redis.pcall('STRLEN', log)
        if type(size) == 'table' then
          damaged(size)
          out[i] = -4
        elseif size ~= tonumber(string.sub(change, 2, colon - 1)) then
          out[i] = -1
        end
      end
      if out[i] == current then
        writes[#writes + 1] = i
      end
    end
  end
end

for _, i in ipairs(writes) do
  local state, outbox, log = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local b = starts[i]
  local body, ttl, change, n = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], tonumber(ARGV[b + 4])
  local current = out[i]
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
    local op = string.sub(change, 1, 1)
    if op == '=' then
      if #change == 1 then
        redis.call('DEL', log)
      else
        redis.call('SET', log, string.sub(change, 2), 'PX', ttl)
      end
    elseif op == '+' then
      -- The log lives exactly as long as the state that counts its chunks.
      local logged = string.sub(change, string.find(change, ':', 2, true) + 1)
      if logged ~= '' then
        redis.call('APPEND', log, logged)
      end
      redis.call('PEXPIRE', log, ttl)
    end
    if n > 0 then
      -- An outbox lives as long as its newest alert needs: a write without
      -- alerts leaves it alone (the relay empties it within seconds).
      for j = b + 5, b + 4 + n do
        redis.call('RPUSH', outbox, ARGV[j])
      end
      redis.call('PEXPIRE', outbox, ttl)
    end
    out[i] = version
  end
end
return out
