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
  local R, E = obs.ranks, obs.experts
  local avg = obs.tokens * obs.top_k / R
  local load, on = {}, {}          -- rank load; tokens of expert e still on its home
  for r = 1, R do load[r] = obs.rank_load[r] end
  for e = 1, E do on[e] = obs.expert_load[e] end
  for _ = 1, P.params.max_moves do
    local hi, lo = 1, 1
    for r = 2, R do
      if load[r] > load[hi] then hi = r end
      if load[r] < load[lo] then lo = r end
    end
    if load[hi] <= avg or load[hi] == load[lo] or load[lo] + q > avg then break end
    local best, bestn = nil, -1
    for e = 1, E do
      if obs.expert_rank[e] == hi and on[e] > bestn then best, bestn = e, on[e] end
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
