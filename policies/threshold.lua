-- threshold: ReaLB's rule (per-rank precision switching).
--
-- Paper: ReaLB (real-time load balancing for multimodal MoE inference).
-- When the batch is large enough to be compute-bound (tokens >= min_tokens),
-- ranks that are overloaded and mostly serve vision tokens (share >=
-- vision_share) run that layer's experts in a low precision (NVFP4 W4A4 in
-- the paper); weights stay bf16 and are converted on the fly, hidden behind
-- the dispatch ("online").
-- Simplified: the paper does not publish its exact overload test, so it is a
-- parameter: overload = "factor" (load > tau x mean rank load) or "top"
-- (the top_ranks most loaded ranks). vision_share = 0 drops the modality test
-- (the paper's threshold 0); 0.7 is its default.
--
-- kl_budget >= 0 (not in ReaLB) caps the step's measured output KL (nats per
-- token; workload kind "lm", docs/accuracy.md): layer by layer, overloaded
-- ranks are lowered most loaded first while the step's estimated KL stays
-- within it (earlier layers come first to the budget). The estimate of
-- lowering rank r is ratio x mplb.error(low) x (r's share of the layer's gate
-- mass): the error proxy of that choice times a KL-per-proxy ratio. The
-- ratio is measured: the KL of the step's output (res.kl, as learned.lua
-- reads it) over the proxy the policy spent, summed over the steps so far.
-- Until a step has lowered something it is a prior, PRIOR_KL_PER_PROXY (1:
-- the proxy taken as a bound on the KL; measured 0.1-0.3 on models/tiny-moe),
-- halved after each measured step in which the budget refused a rank: a
-- prior too cautious to lower anything would never be measured.
-- Budget 0 is the baseline; a budget above what the rule spends is the rule.
local P = {
  params = {
    tau = 1.25,            -- overloaded: load > tau * mean rank load
    low = "nvfp4",         -- precision for overloaded ranks
    min_tokens = 2048,     -- act only in the compute-bound regime
    vision_share = 0.0,    -- require this share of vision tokens (ReaLB: 0.7)
    overload = "factor",   -- "factor" or "top"
    top_ranks = 1,         -- with overload = "top"
    mode = "online",       -- conversion: online (ReaLB), stored, cached
    kl_budget = -1,        -- < 0: none; else max output KL per step (kind "lm")
  },
}

local PRIOR_KL_PER_PROXY = 1.0
local spent_kl, spent_proxy = 0, 0   -- measured KL and the proxy behind it, over the steps
local step_proxy = 0                 -- this step's proxy so far (feedback, layer by layer)
local prior = PRIOR_KL_PER_PROXY     -- the ratio before any measurement (halving)
local refused = false                -- this step's budget kept an overloaded rank in bf16
local est_step, est_kl = 0, 0        -- the step est_kl was estimated in, and that estimate

local function overloaded_ranks(obs, p)
  local list = {}
  if p.overload == "top" then
    local order = {}
    for r = 1, obs.ranks do order[r] = r end
    table.sort(order, function(a, b)
      local la, lb = obs.rank_load[a], obs.rank_load[b]
      if la ~= lb then return la > lb end
      return a < b
    end)
    for i = 1, math.min(p.top_ranks, obs.ranks) do list[#list + 1] = order[i] end
  else
    local mean = obs.tokens * obs.top_k / obs.ranks
    list = mplb.above(obs.rank_load, p.tau * mean)      -- ranks with load > tau x mean
  end
  return list
end

-- Before the run: a budget needs a measured KL; a no-op the experiment would
-- not show (every batch below min_tokens).
function P.check(exp)
  if P.params.kl_budget >= 0 and exp.kind ~= "lm" then
    error(("params.kl_budget needs measured accuracy (workload kind \"lm\"); the workload is \"%s\"")
      :format(exp.kind), 0)
  end
  local biggest = math.max(exp.tokens, exp.decode_tokens)
  if exp.tokens > 0 and P.params.min_tokens > biggest then
    return ("params.min_tokens = %d is above every batch (workload.tokens = %d): the policy never acts")
      :format(P.params.min_tokens, biggest)
  end
end

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

function P.init()
  P.stateless = P.params.kl_budget < 0   -- a budget learns its ratio: a resume replays
end

-- KL per unit of error proxy: measured once a step has lowered something.
function P.kl_per_proxy()
  if spent_proxy > 0 then return spent_kl / spent_proxy end
  return prior
end

-- Of the ranks `over`, the most loaded first while the step's estimated KL fits the budget.
local function within_budget(obs, over, p)
  local load, home, imp = obs.rank_load, obs.expert_rank, obs.expert_importance
  local mass, total = {}, 0
  for e = 1, obs.experts do
    local r = home[e]
    mass[r] = (mass[r] or 0) + imp[e]
    total = total + imp[e]
  end
  table.sort(over, function(a, b)
    if load[a] ~= load[b] then return load[a] > load[b] end
    return a < b
  end)
  if est_step ~= obs.step then est_step, est_kl = obs.step, 0 end
  local per, keep = P.kl_per_proxy() * mplb.error(p.low), {}
  for _, r in ipairs(over) do
    local est = total > 0 and per * (mass[r] or 0) / total or 0
    if est_kl + est <= p.kl_budget then keep[#keep + 1] = r; est_kl = est_kl + est else refused = true end
  end
  return keep
end

function P.decide(obs, act)
  local p = P.params
  if obs.tokens < p.min_tokens then return end
  local over = overloaded_ranks(obs, p)
  if p.vision_share > 0 then   -- overloaded and vision-dominated
    local load, vision, keep = obs.rank_load, obs.rank_vision, {}
    for _, r in ipairs(over) do
      if vision[r] >= p.vision_share * load[r] then keep[#keep + 1] = r end
    end
    over = keep
  end
  if p.kl_budget >= 0 then over = within_budget(obs, over, p) end
  if #over > 0 then act:rank_precision(over, p.low, p.mode) end   -- one call for all
end

function P.feedback(res)
  if P.params.kl_budget < 0 then return end
  step_proxy = step_proxy + res.error_proxy
  if res.kl == nil then return end   -- measured once a step, at its last layer
  if step_proxy > 0 then spent_kl, spent_proxy = spent_kl + res.kl, spent_proxy + step_proxy
  elseif refused and spent_proxy == 0 then prior = P.kl_per_proxy() / 2 end
  step_proxy, refused = 0, false
end

return P
