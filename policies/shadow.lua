-- shadow: FasterMoE-style shadowing of popular experts, as a baseline for
-- HarMoEny (docs/reproductions/harmoeny.md).
--
-- Source: FasterMoE (He et al., PPoPP 2022; the fastermoe baseline in
-- sacs-epfl/HarMoEny's scripts): an expert whose tokens would overload its
-- owner is "shadowed" -- its weights are broadcast to every worker, which
-- then computes that expert's tokens locally instead of sending them.
-- Here: each step, every expert with more than `ratio` x the fair share of a
-- rank (T*k/R tokens) gets a copy on every rank; its tokens split evenly over
-- the copies. Simplified: FasterMoE decides with a performance model of
-- broadcast against compute; this takes the load threshold alone. The copies
-- stay while the expert stays popular, so the cost model charges the
-- broadcast (weights over NVLink / the NIC) when the shadowed set changes,
-- not every step as in training, where the weights change each iteration.
local P = { params = { ratio = 1.0, max_shadow = 8 } }

P.stateless = true

function P.decide(obs, act)
  local R, E = obs.ranks, obs.experts
  local fair = obs.tokens * obs.top_k / R
  local load = obs.expert_load
  local order = mplb.argsort(load, "desc")
  local n = 0
  for _, e in ipairs(order) do
    if n >= P.params.max_shadow or load[e] <= P.params.ratio * fair then break end
    local home = obs.expert_rank[e]
    for r = 1, R do
      if r ~= home then act:replicate(e, r) end
    end
    n = n + 1
  end
end

return P
