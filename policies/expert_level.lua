-- expert_level: per-expert precision, greedy by load x sensitivity under an
-- error budget.
--
-- Repeatedly take the rank with the largest effective load (token copies,
-- divided by the compute speedup of each expert's format on this chip) and
-- lower the precision of its expert with the best ratio of time saved to
-- error added, while the gate-mass-weighted error proxy stays within budget.
-- The error of a format is mplb.error(p) (measured through the quantizers);
-- an expert's sensitivity is its share of the batch's gate mass.
local P = { params = { budget = 0.01, low = "nvfp4", mode = "online", min_tokens = 0 } }

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

-- Before the run: a no-op the experiment would not show (every batch below min_tokens).
function P.check(exp)
  local biggest = math.max(exp.tokens, exp.decode_tokens)
  if exp.tokens > 0 and P.params.min_tokens > biggest then
    return ("params.min_tokens = %d is above every batch (workload.tokens = %d): the policy never acts")
      :format(P.params.min_tokens, biggest)
  end
end

function P.decide(obs, act)
  local p = P.params
  if obs.tokens < p.min_tokens then return end
  local R, E = obs.ranks, obs.experts
  local gain = 1 - 1 / mplb.speedup(p.low)   -- share of an expert's time saved
  if gain <= 0 then return end               -- the format saves no compute here
  local mass = 0
  for e = 1, E do mass = mass + obs.expert_importance[e] end
  if mass == 0 then return end
  local err = mplb.error(p.low)
  local eff, low = {}, {}
  for r = 1, R do eff[r] = 0 end
  for e = 1, E do
    local r = obs.expert_rank[e]
    eff[r] = eff[r] + obs.expert_load[e]
  end
  local spent = 0
  while true do
    local r = 1
    for q = 2, R do if eff[q] > eff[r] then r = q end end
    local best, bestscore
    for e = 1, E do
      if obs.expert_rank[e] == r and not low[e] and obs.expert_load[e] > 0 then
        local cost = obs.expert_importance[e] * err / mass
        if spent + cost <= p.budget then
          local score = obs.expert_load[e] / math.max(cost, 1e-300)
          if bestscore == nil or score > bestscore then best, bestscore = e, score end
        end
      end
    end
    if best == nil then break end
    act:expert_precision(best, p.low, p.mode)
    low[best] = true
    spent = spent + obs.expert_importance[best] * err / mass
    eff[r] = eff[r] - obs.expert_load[best] * gain
  end
end

return P
