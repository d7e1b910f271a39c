-- learned: ReaLB's threshold with tau learned online (dual ascent).
--
-- Maximise speedup subject to a mean error proxy <= budget. Each layer keeps
-- its own tau: after every step, feedback moves tau up when the layer's
-- error proxy was above budget (fewer ranks switch) and down when below
-- (more switch): tau <- clamp(tau + lr * (error - budget) / budget). On a
-- drifting workload tau follows the drift; the error settles near budget.
-- metric = "kl": the budget is in measured KL (nats per token of the model's
-- output, workload kind "lm"), which arrives once a step (res.kl, at the last
-- layer) and moves every layer's tau the same way.
local P = {
  params = { budget = 0.02, low = "nvfp4", tau0 = 1.5, lr = 0.05, tau_min = 1.0, tau_max = 4.0,
             min_tokens = 0, mode = "online", metric = "proxy" },
}

P.tau = {}   -- per layer; read by tests and by feedback

local function tau_of(layer)
  local t = P.tau[layer]
  if t == nil then t = P.params.tau0; P.tau[layer] = t end
  return t
end

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
  local tau = tau_of(obs.layer)
  local mean = obs.tokens * obs.top_k / obs.ranks
  for r = 1, obs.ranks do
    if obs.rank_load[r] > tau * mean then act:rank_precision(r, p.low, p.mode) end
  end
end

local function step_tau(layer, err)
  local p = P.params
  local t = tau_of(layer) + p.lr * (err - p.budget) / p.budget
  P.tau[layer] = math.max(p.tau_min, math.min(p.tau_max, t))
end

function P.feedback(res)
  local p = P.params
  if p.metric == "kl" then
    if res.kl == nil then
      if res.layer == 1 and res.step > 1 and not P.kl_seen then
        error("metric = \"kl\" needs measured accuracy (workload kind \"lm\")")
      end
      return
    end
    P.kl_seen = true
    for layer = 1, res.layer do step_tau(layer, res.kl) end
  elseif p.metric == "proxy" then
    step_tau(res.layer, res.error_proxy)
  else
    error("metric must be \"proxy\" or \"kl\", got " .. tostring(p.metric))
  end
end

return P
