-- lis: R&Q (Replicate and Quantize), driven by the Load-Imbalance Score.
--
-- Paper: R&Q. From calibration data, count tokens per expert and measure
-- each expert's importance; replicate the busiest experts and quantize the
-- least important ones so the memory added equals the memory freed; a
-- replicated expert's tokens split evenly over its copies.
-- LIS = E * max_e n_e / (T * k) (1 = balanced), here after the split.
-- Simplified: importance is obs.expert_importance (the gate mass of this
-- batch, or the trace's importance dataset when it has one); the budget of a
-- rank is its all-bf16 footprint (strict R&Q) unless budget = "limit" (the
-- run's memory budget); quantized experts are stored at `low` (no per-layer
-- conversion). The dynamic variant (window) uses the loads of the last
-- `window` steps of this layer instead of the current batch alone.
local P = {
  params = { bound = 1.5, low = "int4_g128", max_replicas = 0, budget = "baseline", window = 1 },
}

local history = {}   -- history[layer] = list of per-expert load tables

local function loads(obs)
  local h = history[obs.layer] or {}
  history[obs.layer] = h
  local cur = {}
  for e = 1, obs.experts do cur[e] = obs.expert_load[e] end
  h[#h + 1] = cur
  while #h > P.params.window do table.remove(h, 1) end
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

function P.decide(obs, act)
  local p = P.params
  local R, E, T, k = obs.ranks, obs.experts, obs.tokens, obs.top_k
  local n = loads(obs)
  local copies, holds, load, mem, budget, low_done = {}, {}, {}, {}, {}, {}
  for r = 1, R do
    holds[r], load[r], mem[r] = {}, 0, obs.rank_mem[r]
    budget[r] = p.budget == "limit" and obs.mem_budget or obs.rank_mem[r]
  end
  for e = 1, E do
    copies[e] = 1
    local r = obs.expert_rank[e]
    holds[r][e] = true
    load[r] = load[r] + n[e]
  end
  local bf16 = obs.expert_bytes
  local freed = bf16 - bf16 * mplb.bits(p.low) / 16
  local max_rep = p.max_replicas > 0 and p.max_replicas or R
  local reps = 0
  while reps < max_rep and P.lis(n, copies, E, T, k) > p.bound do
    -- the busiest expert (per copy)
    local hot, hotn = 1, -1
    for e = 1, E do
      if n[e] / copies[e] > hotn then hot, hotn = e, n[e] / copies[e] end
    end
    -- the least loaded rank without a copy
    local dst
    for r = 1, R do
      if not holds[r][hot] and (dst == nil or load[r] < load[dst]) then dst = r end
    end
    if dst == nil then break end
    -- free memory on dst by quantizing its least important experts
    while mem[dst] + bf16 > budget[dst] do
      local victim
      for e = 1, E do
        if obs.expert_rank[e] == dst and not low_done[e] and e ~= hot and
           (victim == nil or obs.expert_importance[e] < obs.expert_importance[victim]) then
          victim = e
        end
      end
      if victim == nil then break end
      act:expert_precision(victim, p.low, "stored")
      low_done[victim] = true
      mem[dst] = mem[dst] - freed
    end
    if mem[dst] + bf16 > budget[dst] then break end
    act:replicate(hot, dst)
    mem[dst] = mem[dst] + bf16
    -- the new copy takes an equal share of the hot expert's tokens
    local before = n[hot] / copies[hot]
    copies[hot] = copies[hot] + 1
    local after = n[hot] / copies[hot]
    for r = 1, R do
      if holds[r][hot] then load[r] = load[r] - before + after end
    end
    holds[dst][hot] = true
    load[dst] = load[dst] + after
    reps = reps + 1
  end
end

return P
