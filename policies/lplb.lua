-- lplb: per-batch token redistribution over redundant experts (DeepSeek's
-- LPLB idea) on top of an EPLB placement.
--
-- Source: deepseek-ai/LPLB README (a Linear-Programming-Based Load Balancer:
-- experts reordered and replicated by EPLB; "solves optimal token
-- assignments for each batch"; each redundant expert links to its original,
-- forming an edge between two GPUs whose capacity is the tokens the batch
-- gives that expert; an LP moves tokens along the edges to minimise the
-- load imbalance inside the EP group). LPLB solves its LP with an
-- interior-point method on one SM; here the same optimum (minimal maximum
-- rank load, fractional) is found exactly by bisection on the maximum load
-- with a max-flow feasibility test, then rounded to whole tokens.
-- In mplb: the copies are EPLB's (mplb.rebalance_experts, every `period`
-- steps from decayed past loads; the cost model charges each rebalance's
-- migration), and every batch splits each replicated expert's tokens over
-- its copies as the LP says (act:move_tokens between copy holders: no
-- weights move). EPLB alone splits them evenly. Simplified: LPLB's static
-- topologies (cube, hypercube, torus) that restrict which GPUs may hold a
-- redundant copy are not modelled (EPLB decides where copies go); the LP
-- balances token counts, not GEMM time (as LPLB's).
local P = { params = { redundant = 0, groups = 0, period = 1, decay = 0.8, lp = true } }

-- Maximum flow (Dinic) on a small graph: n nodes, edges added with cap.
local function maxflow(n, edges, s, t)
  local head, nxt, to, cap = {}, {}, {}, {}
  for i = 1, n do head[i] = 0 end
  local m = 0
  local function add(u, v, c)
    m = m + 1; to[m], cap[m], nxt[m], head[u] = v, c, head[u], m
    m = m + 1; to[m], cap[m], nxt[m], head[v] = u, 0, head[v], m
  end
  for _, e in ipairs(edges) do add(e[1], e[2], e[3]) end
  local flow, eps = 0, 1e-9
  while true do
    local level = {}
    for i = 1, n do level[i] = -1 end
    level[s] = 0
    local q, qh = { s }, 1
    while qh <= #q do
      local u = q[qh]; qh = qh + 1
      local a = head[u]
      while a ~= 0 do
        if cap[a] > eps and level[to[a]] < 0 then level[to[a]] = level[u] + 1; q[#q + 1] = to[a] end
        a = nxt[a]
      end
    end
    if level[t] < 0 then break end
    local it = {}
    for i = 1, n do it[i] = head[i] end
    local function dfs(u, f)
      if u == t then return f end
      while it[u] ~= 0 do
        local a = it[u]
        local v = to[a]
        if cap[a] > eps and level[v] == level[u] + 1 then
          local d = dfs(v, math.min(f, cap[a]))
          if d > eps then
            cap[a] = cap[a] - d
            cap[a % 2 == 1 and a + 1 or a - 1] = cap[a % 2 == 1 and a + 1 or a - 1] + d
            return d
          end
        end
        it[u] = nxt[a]
      end
      return 0
    end
    while true do
      local f = dfs(s, math.huge)
      if f <= eps then break end
      flow = flow + f
    end
  end
  return flow, cap   -- cap[2i-1]: residual of edge i
end

-- The LP: tokens n[j] of flexible expert j may go to any rank in holders[j];
-- fixed[r] is what rank r computes anyway. Returns x[j][i] (tokens of j on
-- holders[j][i]) minimising max_r load, and that maximum.
function P.solve(n, holders, fixed, R)
  local total, lo, hi = 0, 0, 0
  for r = 1, R do total = total + fixed[r]; lo = math.max(lo, fixed[r]) end
  local even = {}
  for r = 1, R do even[r] = fixed[r] end
  for j = 1, #n do
    total = total + n[j]
    for _, r in ipairs(holders[j]) do even[r] = even[r] + n[j] / #holders[j] end
  end
  lo = math.max(lo, total / R)
  for r = 1, R do hi = math.max(hi, even[r]) end
  local J = #n
  local s, t = J + R + 1, J + R + 2
  local need = total
  for r = 1, R do need = need - fixed[r] end
  local function graph(T)
    local edges = {}
    for j = 1, J do
      edges[#edges + 1] = { s, j, n[j] }
      for _, r in ipairs(holders[j]) do edges[#edges + 1] = { j, J + r, math.huge } end
    end
    for r = 1, R do edges[#edges + 1] = { J + r, t, math.max(0, T - fixed[r]) } end
    return edges
  end
  for _ = 1, 50 do   -- bisection to well below one token
    if hi - lo <= 0.25 then break end
    local mid = (lo + hi) / 2
    local f = maxflow(J + R + 2, graph(mid), s, t)
    if f >= need - 1e-6 * math.max(1, need) then hi = mid else lo = mid end
  end
  local edges = graph(hi)
  local _, cap = maxflow(J + R + 2, edges, s, t)
  local x, a = {}, 0
  for j = 1, J do
    a = a + 1                                  -- the source edge
    x[j] = {}
    for i = 1, #holders[j] do
      a = a + 1
      x[j][i] = cap[2 * a]                     -- flow = the reverse residual
    end
  end
  return x, hi
end

-- Whole tokens summing to n, closest to the fractional split y.
local function round_split(y, n)
  local out, rem, s = {}, {}, 0
  for i, v in ipairs(y) do out[i] = math.floor(v); s = s + out[i]; rem[i] = v - out[i] end
  local order = {}
  for i = 1, #y do order[i] = i end
  table.sort(order, function(a, b) if rem[a] ~= rem[b] then return rem[a] > rem[b] end return a < b end)
  for k = 1, n - s do local i = order[(k - 1) % #y + 1]; out[i] = out[i] + 1 end
  return out
end

local hist, plan_of = {}, {}

function P.decide(obs, act)
  local p = P.params
  local R, E, layer = obs.ranks, obs.experts, obs.layer
  local h = hist[layer]
  if h and (obs.step - 1) % p.period == 0 then
    local per_gpu = math.ceil((E + (p.redundant > 0 and p.redundant or R)) / R)
    if obs.expert_bytes > 0 then per_gpu = math.min(per_gpu, obs.mem_budget // obs.expert_bytes) end
    local groups = p.groups > 0 and p.groups or obs.nodes
    if E % groups ~= 0 or groups % obs.nodes ~= 0 then groups = 1 end
    local nodes = groups == 1 and 1 or obs.nodes
    if per_gpu * R >= E then plan_of[layer] = mplb.rebalance_experts(h, per_gpu * R, groups, nodes, R) end
  end
  hist[layer] = mplb.decay_add(h or {}, obs.expert_load, p.decay)
  local row = plan_of[layer]
  if not row then return end
  local per_gpu = #row // R
  local experts, gpus = {}, {}
  local holders, seen = {}, {}
  for x, e0 in ipairs(row) do
    local e, g = e0 + 1, (x - 1) // per_gpu + 1
    experts[x], gpus[x] = e, g
    holders[e] = holders[e] or {}
    seen[e] = seen[e] or {}
    if not seen[e][g] then seen[e][g] = true; holders[e][#holders[e] + 1] = g end  -- mplb's copy order
  end
  act:place_all(experts, gpus)
  if not p.lp then return end
  -- the batch's LP over the replicated experts
  local load = obs.expert_load
  local fixed, n, hs, ids = {}, {}, {}, {}
  for r = 1, R do fixed[r] = 0 end
  for e = 1, E do
    local hl = holders[e]
    if #hl == 1 then fixed[hl[1]] = fixed[hl[1]] + load[e]
    elseif load[e] > 0 then ids[#ids + 1] = e; n[#n + 1] = load[e]; hs[#hs + 1] = hl end
  end
  if #ids == 0 then return end
  local x = P.solve(n, hs, fixed, R)
  for j, e in ipairs(ids) do
    local want = round_split(x[j], n[j])
    local c = #hs[j]
    -- mplb's split gives copy i floor(n/c) + (i <= n % c): move the surplus
    -- of each copy to the copies short of the LP's share
    local diff = {}
    for i = 1, c do diff[i] = want[i] - (n[j] // c + ((i - 1) < n[j] % c and 1 or 0)) end
    local give = 1
    for i = 1, c do
      while diff[i] > 0 do
        while diff[give] >= 0 do give = give + 1 end
        local m = math.min(diff[i], -diff[give])
        act:move_tokens(e, hs[j][give], hs[j][i], m)
        diff[i], diff[give] = diff[i] - m, diff[give] + m
      end
    end
  end
end

return P
