-- canary.dev/promote, as `canary promote` writes it. The controller acts once per value, so
-- when "true" was already handled (an earlier release) a timestamp is written instead.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local handled = {}
if obj.status ~= nil and obj.status.handledAnnotations ~= nil then
  handled = obj.status.handledAnnotations
end
if handled["promote"] == "true" then
  obj.metadata.annotations["canary.dev/promote"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
else
  obj.metadata.annotations["canary.dev/promote"] = "true"
end
return obj
