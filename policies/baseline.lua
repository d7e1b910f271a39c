-- baseline: every expert in bf16, placement untouched. The reference every
-- speedup in mplb is measured against.
local P = { params = {} }

P.stateless = true   -- decide depends only on obs and params (resume need not replay)

function P.decide(obs, act)
  -- nothing to do: the plan starts all-bf16
end

return P
