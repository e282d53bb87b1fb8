-- stream-scorer: compare-and-set of one contact's state, with its alerts.
--
-- The worker reads the state (HMGET v s), applies events with the reference
-- engine, and calls this script to write the result. The write happens only
-- if nobody else wrote since the read (version check), and the alerts the
-- change produced go into the contact's outbox in the same atomic step.
--
-- KEYS[1] state hash   ss:{cid}:state   v = version, s = state JSON
-- KEYS[2] outbox list  ss:{cid}:outbox  alert JSON not yet acknowledged by Kafka
-- ARGV[1] expected version ("0" for a new contact)
-- ARGV[2] new state JSON, or "" when nothing changed (only the outbox is read)
-- ARGV[3] key TTL in milliseconds
-- ARGV[4..] alert JSON to append to the outbox
-- Returns {1, outbox...} when written, {0} on a version conflict.

local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return {0}
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'v', tostring(tonumber(current) + 1), 's', ARGV[2])
  for i = 4, #ARGV do
    redis.call('RPUSH', KEYS[2], ARGV[i])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
end
local out = redis.call('LRANGE', KEYS[2], 0, -1)
table.insert(out, 1, 1)
return out
