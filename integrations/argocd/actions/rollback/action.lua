-- canary.dev/rollback, as `canary rollback` writes it: the value is the reason recorded on the
-- Canary. The controller acts once per value, so a reason it already handled gets a timestamp.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local handled = {}
if obj.status ~= nil and obj.status.handledAnnotations ~= nil then
  handled = obj.status.handledAnnotations
end
local reason = "requested with the Argo CD rollback action"
if handled["rollback"] == reason then
  reason = reason .. " (" .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. ")"
end
obj.metadata.annotations["canary.dev/rollback"] = reason
return obj
