-- cluster_place: capacity-bounded expert placement from activation patterns,
-- the placement half of "Scaling Multi-Node Mixture-of-Experts Inference
-- Using Expert Activation Patterns" (arXiv 2604.23150): once requests are
-- grouped by their expert activations (k-means over the requests'
-- activation vectors, each cluster's requests served by one node: done when
-- the batch is formed, before routing, so outside a policy; see
-- experiments/repro/placement/group_requests.py), put each expert on the
-- node whose requests route the most tokens to it, every node holding the
-- same number of experts, so that most top-k slots stay inside their node.
--
-- Here: per layer, the tokens each node's ranks route to each expert over a
-- profiling window (`warmup` steps, summed with `decay`); then the
-- expert -> node assignment that maximises the slots kept local under a
-- capacity of ceil(E / nodes) experts per node, solved exactly (min-cost
-- flow; the study's own solver is not public); inside each node the experts
-- go heaviest first onto the least-loaded GPU with room (ceil(E / R) per
-- GPU). The placement is kept (re-solved every `period` steps if period >
-- 0); the cost model charges the weight migration of each change. The first
-- `warmup` steps run on the default placement.
local P = { params = { warmup = 1, period = 0, decay = 1.0 } }

-- Exact assignment: cnt[n][e] local slots if expert e is on node n; each
-- expert on one node, at most cap experts per node; maximise the sum.
-- Successive shortest paths (Bellman-Ford on the residual graph) over
-- source -> expert (1) -> node (1, cost -cnt) -> sink (cap).
function P.assign(cnt, N, E, cap)
  local S, T = E + N + 1, E + N + 2
  local to, capa, cost, nxt, head = {}, {}, {}, {}, {}
  for i = 1, T do head[i] = 0 end
  local m = 0
  local function add(u, v, c, w)
    m = m + 1; to[m], capa[m], cost[m], nxt[m], head[u] = v, c, w, head[u], m
    m = m + 1; to[m], capa[m], cost[m], nxt[m], head[v] = u, 0, -w, head[v], m
  end
  for e = 1, E do
    add(S, e, 1, 0)
    for n = 1, N do add(e, E + n, 1, -(cnt[n][e] or 0)) end
  end
  for n = 1, N do add(E + n, T, cap, 0) end
  for _ = 1, E do
    local dist, prev, inq, q = {}, {}, {}, { S }
    for i = 1, T do dist[i] = math.huge end
    dist[S] = 0
    local qh = 1
    while qh <= #q do   -- SPFA
      local u = q[qh]; qh = qh + 1; inq[u] = false
      local a = head[u]
      while a ~= 0 do
        if capa[a] > 0 and dist[u] + cost[a] < dist[to[a]] - 1e-9 then
          dist[to[a]] = dist[u] + cost[a]; prev[to[a]] = a
          if not inq[to[a]] then inq[to[a]] = true; q[#q + 1] = to[a] end
        end
        a = nxt[a]
      end
    end
    if dist[T] == math.huge then break end
    local v = T
    while v ~= S do
      local a = prev[v]
      capa[a] = capa[a] - 1
      local r = a % 2 == 1 and a + 1 or a - 1
      capa[r] = capa[r] + 1
      v = to[r]
    end
  end
  local node_of = {}
  for e = 1, E do
    local a = head[e]
    while a ~= 0 do
      if a % 2 == 1 and to[a] > E and to[a] <= E + N and capa[a] == 0 then node_of[e] = to[a] - E end
      a = nxt[a]
    end
  end
  return node_of
end

local hist, total_of, place_of = {}, {}, {}
local all_experts = {}

function P.decide(obs, act)
  local p = P.params
  local layer, E, N, R = obs.layer, obs.experts, obs.nodes, obs.ranks
  local s = obs.step - 1                                 -- 0-based
  if s >= p.warmup and hist[layer] and
     (place_of[layer] == nil or (p.period > 0 and (s - p.warmup) % p.period == 0)) then
    local node_of = P.assign(hist[layer], N, E, math.ceil(E / N))
    place_of[layer] = mplb.greedy_pack(total_of[layer], R, math.ceil(E / R), node_of, obs.gpus_per_node)
  end
  if s < p.warmup or p.period > 0 then
    hist[layer] = mplb.src_sums(obs.gpus_per_node, hist[layer] or {}, p.decay)
    total_of[layer] = mplb.decay_add(total_of[layer] or {}, obs.expert_load, p.decay)
  end
  local gpu_of = place_of[layer]
  if gpu_of then
    if #all_experts ~= E then for e = 1, E do all_experts[e] = e end end
    act:place_all(all_experts, gpu_of)
  end
end

return P
