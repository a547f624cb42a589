-- Argo CD health check for every regie.dev kind (regie.dev/v1alpha1).
--
-- One script serves all ten kinds: it branches on obj.kind. Argo CD runs it with the live object
-- in `obj` and reads `status` and `message` from the table it returns. It is written for Argo
-- CD's Lua (5.1, gopher-lua) and tested with lua5.1 and lua5.4 (e2e/tests/health_lua.rs).
--
-- Health is kstatus, the convention Flux reads natively, so both tools agree:
--   * being deleted, no status yet, or status.observedGeneration behind metadata.generation
--     -> Progressing;
--   * Stalled=True -> Degraded, with the reason and message (the root cause);
--   * Reconciling=True, or Ready not True -> Progressing;
--   * Ready=True -> Healthy.
-- Three deliberate exceptions (docs/guides/gitops.md explains them):
--   * a Tenant that is Stalled only because one of its components or packages is
--     (reason ChildStalled) is Healthy, with the root cause as its message. The component itself
--     is Degraded, so the Application still shows it; but the Tenant's own health gates the sync
--     wave of its namespaced objects, and a Degraded Tenant would stop the very commit that
--     fixes the component from being applied;
--   * a HostingComponent that is Ready but not Available is Healthy, with the availability as
--     its message: availability is measured, reported and alerted by regie's SLA engine, and a
--     SaaS outage must not fail a sync;
--   * ServiceLevel, PriceList, CostPool and ServiceOrder without any status are Healthy: regie
--     reports problems with them on the objects that use them. Once regie writes their status,
--     the kstatus rules above apply.
-- Usage, Invoice and SlaReport are written by regie, not kept in git: Healthy when present,
-- Degraded only when regie marks them Stalled.

local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or whichever of the two is there.
local function describe(c)
  if c == nil then
    return ""
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  return reason
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local kind = obj.kind or ""

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return result("Progressing", "Being deleted: waiting for regie to clean up and release its finalizer")
end

-- Written by regie.
if kind == "Usage" or kind == "Invoice" or kind == "SlaReport" then
  local stalled = condition("Stalled")
  if is_true(stalled) then
    return result("Degraded", describe(stalled))
  end
  local s = obj.status or {}
  local spec = obj.spec or {}
  if kind == "Usage" then
    local n = s.segmentCount or 0
    local segments = "segments"
    if n == 1 then
      segments = "segment"
    end
    local state = "open"
    if s.closed then
      state = "closed"
    end
    return result("Healthy", string.format("%s: %d %s, %s", spec.period or "?", n, segments, state))
  elseif kind == "Invoice" then
    local number = spec.number or "(no number yet)"
    return result("Healthy", (spec.state or "draft") .. " invoice " .. number .. " for " .. (spec.period or "?") ..
      ": " .. (spec.currency or "EUR") .. " " .. (spec.total or "?"))
  else
    if s.met == nil then
      return result("Healthy", (spec.period or "?") .. ": measuring")
    elseif s.met then
      return result("Healthy", (spec.period or "?") .. ": every component met its target")
    end
    return result("Healthy", (spec.period or "?") .. ": target not met (worst availability " ..
      (s.worstAvailability or "?") .. "%)")
  end
end

local status_optional = kind == "ServiceLevel" or kind == "PriceList" or kind == "CostPool" or kind == "ServiceOrder"

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  if status_optional then
    return result("Healthy", "No status reported by regie for this " .. kind)
  end
  return result("Progressing", "Waiting for regie to reconcile this " .. kind)
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  local seen = "none"
  if observed ~= nil then
    seen = string.format("%d", observed)
  end
  return result("Progressing", string.format("Waiting for regie to observe generation %d (observed: %s)", generation, seen))
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")

if is_true(stalled) then
  if kind == "Tenant" and stalled.reason == "ChildStalled" then
    return result("Healthy", "Tenant reconciled; not every component or package is: " .. (stalled.message or ""))
  end
  return result("Degraded", describe(stalled))
end

if is_true(reconciling) then
  return result("Progressing", describe(reconciling))
end

if ready == nil then
  return result("Progressing", "Waiting for the Ready condition")
end

if ready.status ~= "True" then
  return result("Progressing", describe(ready))
end

if kind == "HostingComponent" then
  local available = condition("Available")
  if available ~= nil and available.status ~= "True" then
    return result("Healthy", "Ready; not available: " .. describe(available))
  end
  if available ~= nil then
    return result("Healthy", "Ready and available: " .. describe(available))
  end
end

if kind == "Tenant" and obj.status.componentsSummary ~= nil then
  return result("Healthy", (ready.message or "Ready") .. " (components ready: " .. obj.status.componentsSummary .. ")")
end

local message = ready.message
if message == nil or message == "" then
  message = "Ready"
end
return result("Healthy", message)
