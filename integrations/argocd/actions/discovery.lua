-- The on-call actions Argo CD offers on a canary.dev Canary, each enabled only where the
-- controller would act on it (canary/domain/machine.py, the on-call annotations).
-- Base and table libraries only: Argo CD runs custom scripts without the string library.

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

local phase = nil
if obj.status ~= nil then
  phase = obj.status.phase
end
local annotations = obj.metadata.annotations or {}
local paused = says_true(annotations["canary.dev/pause"])
-- The controller reads no annotation while spec.suspend is true.
local suspended = obj.spec ~= nil and obj.spec.suspend == true
local analysing = (phase == "Progressing" or phase == "WaitingPromotion") and not suspended

local actions = {}
actions["promote"] = {
  ["disabled"] = not analysing,
  ["displayName"] = "Promote (skip the rest of the analysis)",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["rollback"] = {
  ["disabled"] = not analysing,
  ["displayName"] = "Roll back",
  ["iconClass"] = "fa fa-fw fa-undo",
}
actions["pause"] = {
  ["disabled"] = paused,
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause",
}
actions["resume"] = {
  ["disabled"] = not paused,
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play",
}
actions["retry"] = {
  ["disabled"] = phase ~= "Failed" or suspended,
  ["displayName"] = "Retry the failed revision",
  ["iconClass"] = "fa fa-fw fa-redo",
}
return actions
