-- Argo CD's health of a trustee.dev KeyTrusteeServer, Organization or
-- BackupSchedule, read from the status the operator writes
-- (docs/OPERATOR.md, "Argo CD"). Lua 5.1, as Argo CD runs it.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to act on generation " .. generation
  return hs
end

local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "the operator has not reported Ready yet"
  return hs
end
if ready.status == "True" then
  local backup = condition(status, "LastBackupSucceeded")
  if backup ~= nil and backup.status == "False" then
    hs.status = "Degraded"
    hs.message = "the last backup failed: " .. (backup.message or "")
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

-- Not ready: a server that serves less than its spec asks is Degraded;
-- anything else (an organization waiting for its server) is on its way.
local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message or ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = ready.message or ""
return hs
