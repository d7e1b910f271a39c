local P = {}
function P.decide(obs, act)
  error('boom')
end
return P
