-- canary.dev/pause=true, as `canary pause` writes it.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["canary.dev/pause"] = "true"
return obj
