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
  local R = obs.ranks
  local gain = 1 - 1 / mplb.speedup(p.low)   -- share of an expert's time saved
  if gain <= 0 then return end               -- the format saves no compute here
  local imp, load = mplb.values(obs.expert_importance), mplb.values(obs.expert_load)
  local mass = mplb.sum(imp)
  if mass == 0 then return end
  local err = mplb.error(p.low)
  local eff = mplb.rank_sums(load, obs.expert_rank, R)   -- effective load per rank
  local on_rank = mplb.group_by(obs.expert_rank, R)
  local low, spent = {}, 0
  while true do
    local r = mplb.argmax(eff)               -- the rank with the largest effective load
    local best, bestscore
    for _, e in ipairs(on_rank[r]) do
      if not low[e] and load[e] > 0 then
        local cost = imp[e] * err / mass
        if spent + cost <= p.budget then
          local score = load[e] / math.max(cost, 1e-300)
          if bestscore == nil or score > bestscore then best, bestscore = e, score end
        end
      end
    end
    if best == nil then break end
    act:expert_precision(best, p.low, p.mode)
    low[best] = true
    spent = spent + imp[best] * err / mass
    eff[r] = eff[r] - load[best] * gain
  end
end

return P
