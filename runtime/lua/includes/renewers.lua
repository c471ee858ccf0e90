--[[ renewers: a node process's last renewal in a partition (K.renewers, runtime/keys.py), one
  entry per node id: `incarnation|first|at|margin` (Redis ms). leases_renew writes it, leases_reap
  reads it. ]]

-- An entry from its fields.
local function renewer_entry(incarnation, first, at, margin)
  return incarnation .. '|' .. first .. '|' .. at .. '|' .. margin
end

-- An entry's incarnation, first, at and margin (the last three numbers); nothing for one not in that form.
local function renewer_fields(raw)
  local incarnation, first, at, margin = string.match(raw, '^([^|]*)|(%d+)|(%d+)|(%d+)$')
  return incarnation, tonumber(first), tonumber(at), tonumber(margin)
end
