-- redistribute: HarMoEny-style token redistribution to idle ranks.
--
-- Paper/code: HarMoEny (public code). All ranks share per-expert token
-- counts; target avg = T*k/R. While some rank is above avg: take the most
-- and the least loaded ranks; stop if they are equal, or if the least loaded
-- would exceed avg by taking q tokens; take the most popular expert of the
-- most loaded rank (stop if it has fewer than q tokens); move
-- min(its tokens, avg - load[least]) of its tokens to the least loaded rank,
-- which fetches the expert's weights (prefetch overlapped with compute).
-- Simplified: an expert's tokens on a rank are its count split over copies.
local P = { params = { q = 150, max_moves = 1000 } }

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

function P.decide(obs, act)
  local q = P.params.q
  local R = obs.ranks
  local avg = obs.tokens * obs.top_k / R
  local load = mplb.values(obs.rank_load)          -- rank load
  local on = mplb.values(obs.expert_load)          -- tokens of expert e still on its home
  local on_rank = mplb.group_by(obs.expert_rank, R) -- experts homed on each rank
  for _ = 1, P.params.max_moves do
    local hi, lo = mplb.extremes(load)             -- most and least loaded ranks
    if load[hi] <= avg or load[hi] == load[lo] or load[lo] + q > avg then break end
    -- the most popular expert of the most loaded rank
    local best, bestn = nil, -1
    for _, e in ipairs(on_rank[hi]) do
      if on[e] > bestn then best, bestn = e, on[e] end
    end
    if best == nil or bestn < q then break end
    local n = math.min(bestn, avg - load[lo])
    act:move_tokens(best, hi, lo, n)
    on[best] = on[best] - n
    load[hi] = load[hi] - n
    load[lo] = load[lo] + n
  end
end

return P
