-- static: every expert at one precision, every step (the "FP4 everywhere"
-- and "FP8 everywhere" points of the ReaLB paper's comparison).
-- mode "online" converts bf16 weights each layer; "stored" keeps them at
-- `prec` (smaller memory, no conversion).
local P = { params = { prec = "fp8_e4m3", mode = "stored" } }

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

function P.decide(obs, act)
  for e = 1, obs.experts do
    act:expert_precision(e, P.params.prec, P.params.mode)
  end
end

return P
