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
local P = {
  params = {
    tau = 1.25,            -- overloaded: load > tau * mean rank load
    low = "nvfp4",         -- precision for overloaded ranks
    min_tokens = 2048,     -- act only in the compute-bound regime
    vision_share = 0.0,    -- require this share of vision tokens (ReaLB: 0.7)
    overload = "factor",   -- "factor" or "top"
    top_ranks = 1,         -- with overload = "top"
    mode = "online",       -- conversion: online (ReaLB), stored, cached
  },
}

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

-- Before the run: a no-op the experiment would not show (every batch below min_tokens).
function P.check(exp)
  local biggest = math.max(exp.tokens, exp.decode_tokens)
  if exp.tokens > 0 and P.params.min_tokens > biggest then
    return ("params.min_tokens = %d is above every batch (workload.tokens = %d): the policy never acts")
      :format(P.params.min_tokens, biggest)
  end
end

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

function P.decide(obs, act)
  local p = P.params
  if obs.tokens < p.min_tokens then return end
  local over = overloaded_ranks(obs, p)
  if p.vision_share == 0 then
    act:rank_precision(over, p.low, p.mode)           -- every overloaded rank, one call
    return
  end
  local load, vision = obs.rank_load, obs.rank_vision
  for _, r in ipairs(over) do
    -- overloaded and vision-dominated
    if vision[r] >= p.vision_share * load[r] then act:rank_precision(r, p.low, p.mode) end
  end
end

return P
