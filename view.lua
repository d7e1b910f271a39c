local P = { params = { want = 0 } }
function P.decide(obs, act)
  assert(#obs.rank_load == 4 and #obs.expert_rank == 8)
  assert(obs.expert_rank[8] == 4, 'expert_rank is 1-based')
  assert(obs.rank_load[3] == P.params.want, 'got ' .. tostring(obs.rank_load[3]))
  assert(obs.rank_load[5] == nil)
end
return P
