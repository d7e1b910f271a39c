-- lis: R&Q (Replicate and Quantize), driven by the Load-Imbalance Score.
--
-- Paper: R&Q. From calibration data, count tokens per expert and measure
-- each expert's importance; replicate the busiest experts and quantize the
-- least important ones so the memory added equals the memory freed; a
-- replicated expert's tokens split evenly over its copies.
-- LIS = E * max_e n_e / (T * k) (1 = balanced), here after the split.
-- Importance (param `importance`): "auto" uses the measured one,
-- obs.expert_ablation (the output KL when the expert is removed, R&Q's
-- definition; workload kind "lm" with ablation = true) when the run has it,
-- else "mass"; "ablation" requires it.
-- Simplified: "mass" importance is obs.expert_importance (the gate mass of this
-- batch, or the trace's importance dataset when it has one); the budget of a
-- rank is its all-bf16 footprint (strict R&Q) unless budget = "limit" (the
-- run's memory budget); quantized experts are stored at `low` (no per-layer
-- conversion). The dynamic variant (window) uses the loads of the last
-- `window` steps of this layer instead of the current batch alone.
-- calib = n > 0 is R&Q's calibration (its finding iii): loads and importance
-- are the mean of this layer's first n steps, then frozen, so later batches
-- are balanced with statistics that did not see them.
local P = {
  params = { bound = 1.5, low = "int4_g128", max_replicas = 0, budget = "baseline", window = 1, importance = "auto", calib = 0 },
}

local history = {}   -- history[layer] = list of per-expert load lists

local function loads(obs)
  local h = history[obs.layer] or {}
  history[obs.layer] = h
  h[#h + 1] = mplb.values(obs.expert_load)
  while #h > P.params.window do table.remove(h, 1) end
  if #h == 1 then return h[1] end
  local n = {}
  for e = 1, obs.experts do
    local s = 0
    for _, l in ipairs(h) do s = s + l[e] end
    n[e] = s / #h
  end
  return n
end

function P.lis(n, copies, E, T, k)
  if T * k == 0 then return 0 end
  local mx = 0
  for e = 1, E do mx = math.max(mx, n[e] / copies[e]) end
  return E * mx / (T * k)
end

local function importance(obs, p)
  local abl = obs.expert_ablation
  if p.importance ~= "auto" and p.importance ~= "mass" and p.importance ~= "ablation" then
    error("importance must be \"auto\", \"mass\" or \"ablation\", got " .. tostring(p.importance))
  end
  if p.importance == "ablation" and #abl == 0 then
    error("importance = \"ablation\" needs a run that measures it (workload kind \"lm\", ablation = true)")
  end
  if p.importance ~= "mass" and #abl > 0 then return abl end
  return obs.expert_importance
end

local calib = {}   -- calib[layer] = { seen = steps, n = summed loads, imp = summed importance }

-- R&Q's calibration: the mean of the first p.calib steps' statistics (loads as
-- shares of the batch's T * k slots), then frozen; loads scaled to this batch.
local function calibrated(layer, n, imp, steps, slots)
  local c = calib[layer]
  if not c then
    c = { seen = 0, n = {}, imp = {} }
    for e = 1, #n do c.n[e], c.imp[e] = 0, 0 end
    calib[layer] = c
  end
  if c.seen < steps then
    for e = 1, #n do c.n[e], c.imp[e] = c.n[e] + n[e] / slots, c.imp[e] + (imp[e] or 0) end
    c.seen = c.seen + 1
  end
  local mn, mi = {}, {}
  for e = 1, #n do mn[e], mi[e] = c.n[e] / c.seen * slots, c.imp[e] / c.seen end
  return mn, mi
end

function P.decide(obs, act)
  local p = P.params
  local R, E, T, k = obs.ranks, obs.experts, obs.tokens, obs.top_k
  if T * k == 0 then return end
  local n = loads(obs)
  local imp = mplb.values(importance(obs, p))   -- measured by ablation where the run has it
  if p.calib > 0 then n, imp = calibrated(obs.layer, n, imp, p.calib, T * k) end
  local home = mplb.values(obs.expert_rank)
  local on_rank = mplb.group_by(home, R)            -- on_rank[r]: experts homed on r
  local load = mplb.rank_sums(n, home, R)
  local mem = mplb.values(obs.rank_mem)
  local copies, holders, low_done = {}, {}, {}
  for e = 1, E do copies[e] = 1 end
  local bf16 = obs.expert_bytes
  local freed = bf16 - bf16 * mplb.bits(p.low) / 16
  local max_rep = p.max_replicas > 0 and p.max_replicas or R
  -- The busiest expert per copy, replica after replica, is the order in which
  -- EPLB's replicate_experts adds copies: take it from there, then stop once
  -- LIS <= bound (the busiest per copy is the next one in that order).
  local order = mplb.replicate_experts(n, E + max_rep)
  for j = E + 1, E + max_rep do
    local hot = order[j] + 1
    holders[hot] = holders[hot] or { [home[hot]] = true }   -- ranks holding a copy
    if E * (n[hot] / copies[hot]) / (T * k) <= p.bound then break end   -- LIS <= bound
    -- the least loaded rank without a copy
    local dst = mplb.argmin(load, holders[hot])
    if dst == nil then break end
    local budget = p.budget == "limit" and obs.mem_budget or obs.rank_mem[dst]
    -- free memory on dst by quantizing its least important experts
    while mem[dst] + bf16 > budget do
      local victim
      for _, e in ipairs(on_rank[dst]) do
        if not low_done[e] and e ~= hot and (victim == nil or imp[e] < imp[victim]) then victim = e end
      end
      if victim == nil then break end
      act:expert_precision(victim, p.low, "stored")
      low_done[victim] = true
      mem[dst] = mem[dst] - freed
    end
    if mem[dst] + bf16 > budget then break end
    act:replicate(hot, dst)
    mem[dst] = mem[dst] + bf16
    -- the new copy takes an equal share of the hot expert's tokens
    local before = n[hot] / copies[hot]
    copies[hot] = copies[hot] + 1
    local after = n[hot] / copies[hot]
    for r in pairs(holders[hot]) do load[r] = load[r] - before + after end
    holders[hot][dst] = true
    load[dst] = load[dst] + after
  end
end

return P
