-- threshold: ReaLB's rule (per-rank precision switching).
--
-- Paper: ReaLB, "real-time load balancing for multimodal MoE inference" —
-- when the batch is large enough to be compute-bound (tokens >= min_tokens),
-- ranks whose load exceeds tau x the mean rank load, and whose tokens are
-- mostly vision (share >= vision_share), run that layer's experts in a low
-- precision (NVFP4 W4A4 in the paper); weights are converted on the fly,
-- hidden behind the dispatch.
-- Simplified: "overloaded" is the tau x mean rule (the paper does not publish
-- its exact test); vision_share = 0 disables the modality condition.
local P = {
  params = {
    tau = 1.25,            -- overloaded: load > tau * mean rank load
    low = "nvfp4",         -- precision for overloaded ranks
    min_tokens = 2048,     -- act only in the compute-bound regime
    vision_share = 0.0,    -- require this share of vision tokens (ReaLB: 0.7)
  },
}

function P.decide(obs, act)
  local p = P.params
  if obs.tokens < p.min_tokens then return end
  local mean = obs.tokens * obs.top_k / obs.ranks
  for r = 1, obs.ranks do
    local load = obs.rank_load[r]
    if load > p.tau * mean and obs.rank_vision[r] >= p.vision_share * load then
      act:rank_precision(r, p.low)
    end
  end
end

return P
