-- Removes canary.dev/pause, as `canary resume` does.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["canary.dev/pause"] = nil
  -- Argo CD turns an empty table into an empty list and then keeps the live annotations in its
  -- place, which would keep the pause: with no annotation left, drop the map itself.
  if next(obj.metadata.annotations) == nil then
    obj.metadata.annotations = nil
  end
end
return obj
