local P = {}
function P.decide(obs, act)
  if obs.step == 3 then error('bad step') end
end
return P
