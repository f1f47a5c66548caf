-- canary.dev/retry, as `canary retry` writes it: a timestamp, a value the controller has not
-- handled yet (it acts once per value).
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local handled = {}
if obj.status ~= nil and obj.status.handledAnnotations ~= nil then
  handled = obj.status.handledAnnotations
end
local value = os.date("!%Y-%m-%dT%H:%M:%SZ")
if handled["retry"] == value then
  value = value .. " (again)"
end
obj.metadata.annotations["canary.dev/retry"] = value
return obj
