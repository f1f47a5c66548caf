-- Argo CD health of a canary.dev Canary, read from what the controller writes in its status:
-- the kstatus conditions (Ready, Stalled, Reconciling) and the phase.
--
-- Argo CD runs custom scripts without Lua's string library, so this uses only the base and
-- table libraries.

local hs = {}

-- The controller takes the pause annotation in any letter case ("true", "True", ...).
local function says_true(value)
  for _, t in ipairs({"t", "T"}) do
    for _, r in ipairs({"r", "R"}) do
      for _, u in ipairs({"u", "U"}) do
        for _, e in ipairs({"e", "E"}) do
          if value == t .. r .. u .. e then
            return true
          end
        end
      end
    end
  end
  return false
end

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local generation = obj.metadata.generation
local status = obj.status

-- The CRD defaults a new Canary's status to observedGeneration 0; until the controller has
-- observed the current spec, the rest of the status describes an older one.
if status == nil or status.observedGeneration == nil or
    (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the canary controller to observe generation " .. tostring(generation)
  return hs
end

-- A rolled-back release or a spec the controller cannot use needs someone, paused or not.
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if stalled == nil and status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = status.message
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the controller leaves this Canary alone"
  return hs
end

-- A paused Canary holds its release where it is, and an idle one holds back the next revision.
local annotations = obj.metadata.annotations
if annotations ~= nil and says_true(annotations["canary.dev/pause"]) then
  hs.status = "Suspended"
  hs.message = "paused by the canary.dev/pause annotation at canary weight " ..
      tostring(status.canaryWeight or 0) .. "%"
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil then
  if ready.status == "True" then
    hs.status = "Healthy"
  else
    hs.status = "Progressing"
  end
  hs.message = ready.message
  return hs
end

-- No conditions (a status written before the controller derived them): the phase alone.
if status.phase == "Initialized" or status.phase == "Succeeded" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = "phase " .. tostring(status.phase)
return hs
