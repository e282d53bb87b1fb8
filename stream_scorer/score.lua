-- stream-scorer: the atomic, idempotent update of one contact.
-- Same semantics as stream_scorer/engine.py (the specification).
--
-- KEYS[1] state hash   ss:{cid}:state   s:<score> -> value, t:<score>:<tier> -> 1 when active
-- KEYS[2] seen set     ss:{cid}:seen    event ids already applied
-- KEYS[3] outbox list  ss:{cid}:outbox  alerts recorded but not yet relayed to Kafka
-- ARGV[1] JSON request:
--   {"contact": str, "ttl": int, "model": str, "model_version": int,
--    "scores": {name: {"min": int, "max": int|null, "tiers": [[name, at, rearm], ...]}},
--    "events": [{"id": str, "t": str, "awards": [[rule, score, points], ...]}, ...]}
-- Returns the outbox: every alert JSON still waiting to be relayed.

local state, seen, outbox = KEYS[1], KEYS[2], KEYS[3]
local req = cjson.decode(ARGV[1])
local SEP = string.char(31)

local function clamp(v, spec)
  if v < spec.min then return spec.min end
  if spec.max ~= cjson.null and spec.max ~= nil and v > spec.max then return spec.max end
  return v
end

for _, ev in ipairs(req.events) do
  if redis.call('SADD', seen, ev.id) == 1 then
    local before, order = {}, {}
    for _, a in ipairs(ev.awards) do
      local name, points = a[2], a[3]
      local spec = req.scores[name]
      local raw = redis.call('HGET', state, 's:' .. name)
      local current = raw and tonumber(raw) or clamp(0, spec)
      if before[name] == nil then
        before[name] = current
        order[#order + 1] = name
      end
      redis.call('HSET', state, 's:' .. name, clamp(current + points, spec))
    end
    for _, name in ipairs(order) do
      local value = tonumber(redis.call('HGET', state, 's:' .. name))
      for _, tier in ipairs(req.scores[name].tiers) do
        local tname, at, rearm = tier[1], tier[2], tier[3]
        local flag = 't:' .. name .. ':' .. tname
        local active = redis.call('HEXISTS', state, flag) == 1
        local direction = nil
        if (not active) and value >= at then
          direction = 'up'
          redis.call('HSET', state, flag, 1)
        elseif active and value < rearm then
          direction = 'down'
          redis.call('HDEL', state, flag)
        end
        if direction then
          local id = redis.sha1hex(table.concat({req.contact, name, tname, direction, ev.id}, SEP))
          redis.call('RPUSH', outbox, cjson.encode({
            alert_id = id, contact_id = req.contact, score = name, tier = tname,
            direction = direction, value = value, previous = before[name], threshold = at,
            event_id = ev.id, occurred_at = ev.t, model = req.model,
            model_version = req.model_version,
          }))
        end
      end
    end
  end
end

for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, req.ttl)
end
return redis.call('LRANGE', outbox, 0, -1)
