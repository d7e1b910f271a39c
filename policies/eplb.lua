-- eplb: replica counts and placement by DeepSeek's EPLB algorithm.
--
-- Source: deepseek-ai/EPLB (eplb.py), rebalance_experts(weight[layers,
-- experts], num_replicas, num_groups, num_nodes, num_gpus) -> phy2log,
-- phyrank, logcnt. Hierarchical when the expert groups divide by the nodes:
-- (1) pack groups to nodes, balancing load; (2) within each node, replicate
-- the expert with the highest load per copy until the node's slots are full;
-- (3) pack the physical experts to the node's GPUs. Otherwise global: the
-- same with one group and one node. Re-written here in Lua from the paper's
-- description and the public code's structure (0-based indices inside, as
-- there). Ties: heavier first, then the lower index.
-- As in the original, two copies of one expert can land on one GPU (a known
-- complaint); mplb then counts them as one copy.
-- In mplb: the weight of a layer is its expert load over past steps
-- (exponential decay), rebalanced every `period` steps; the first step of a
-- layer runs on the default placement. `period` is the rebalance interval
-- the policy declares: the cost model charges each rebalance's migration (the
-- weights of every copy the new placement adds, over NVLink or the NIC) in the
-- step it happens, so a short period pays often (docs/cost-model.md).
local P = { params = { redundant = 0, groups = 0, period = 1, decay = 0.8 } }

-- Pack the n items of each row into num_packs packs of n/num_packs items,
-- heaviest first into the lightest pack that has room (mplb.balanced_packing:
-- the loop in C, float32 like the original).
function P.balanced_packing(weight, num_packs)
  local pack_index, rank_in_pack = {}, {}
  for i, w in ipairs(weight) do
    pack_index[i], rank_in_pack[i] = mplb.balanced_packing(w, num_packs)
  end
  return pack_index, rank_in_pack
end

-- Add num_phy - num_log replicas, each to the expert with the most load per
-- copy (mplb.replicate_experts).
function P.replicate_experts(weight, num_phy)
  local phy2log, rank, logcnt = {}, {}, {}
  for i, w in ipairs(weight) do
    phy2log[i], rank[i], logcnt[i] = mplb.replicate_experts(w, num_phy)
  end
  return phy2log, rank, logcnt
end

local function inverse(perm)          -- 0-based values in a 1-based list
  local inv = {}
  for i, v in ipairs(perm) do inv[v + 1] = i - 1 end
  return inv
end

function P.rebalance_experts_hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus)
  local L, num_log = #weight, #weight[1]
  local gsize = num_log // num_groups
  local groups_per_node = num_groups // num_nodes
  local phy_per_gpu = num_phy // num_gpus
  local m, pn = num_log // num_nodes, num_phy // num_nodes
  -- step 1: groups to nodes
  local tpg = {}
  for i = 1, L do
    tpg[i] = {}
    for g = 0, num_groups - 1 do
      local s = 0
      for j = 0, gsize - 1 do s = s + weight[i][g * gsize + j + 1] end
      tpg[i][g + 1] = s
    end
  end
  local gpi, gri = P.balanced_packing(tpg, num_nodes)
  local log2mlog, mlog2log = {}, {}
  for i = 1, L do
    local l2m = {}
    for g = 0, num_groups - 1 do
      for j = 0, gsize - 1 do
        l2m[g * gsize + j + 1] = (gpi[i][g + 1] * groups_per_node + gri[i][g + 1]) * gsize + j
      end
    end
    log2mlog[i], mlog2log[i] = l2m, inverse(l2m)
  end
  -- step 2: replicas within each node (one row per layer and node)
  local tpm = {}
  for i = 1, L do
    for n = 0, num_nodes - 1 do
      local row = {}
      for j = 0, m - 1 do row[j + 1] = weight[i][mlog2log[i][n * m + j + 1] + 1] end
      tpm[#tpm + 1] = row
    end
  end
  local phy2mlog, phyrank, mlogcnt = P.replicate_experts(tpm, pn)
  -- step 3: physical experts to the node's GPUs
  local tpp = {}
  for r, row in ipairs(tpm) do
    tpp[r] = {}
    for q = 1, pn do
      local x = phy2mlog[r][q]
      tpp[r][q] = row[x + 1] / mlogcnt[r][x + 1]
    end
  end
  local pack, rip = P.balanced_packing(tpp, num_gpus // num_nodes)
  local phy2log, prank, logcnt = {}, {}, {}
  for i = 1, L do
    local p2l, pr, cntm = {}, {}, {}
    for n = 0, num_nodes - 1 do
      local r = (i - 1) * num_nodes + n + 1
      local phy2pphy = {}
      for q = 1, pn do phy2pphy[q] = pack[r][q] * phy_per_gpu + rip[r][q] end
      local pphy2phy = inverse(phy2pphy)
      for q = 1, pn do
        local ph = pphy2phy[q] + 1
        p2l[n * pn + q] = mlog2log[i][phy2mlog[r][ph] + n * m + 1]
        pr[n * pn + q] = phyrank[r][ph]
      end
      for j = 1, m do cntm[n * m + j] = mlogcnt[r][j] end
    end
    local lc = {}
    for e = 1, num_log do lc[e] = cntm[log2mlog[i][e] + 1] end
    phy2log[i], prank[i], logcnt[i] = p2l, pr, lc
  end
  return phy2log, prank, logcnt
end

function P.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)
  if num_groups % num_nodes == 0 then
    return P.rebalance_experts_hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
  end
  return P.rebalance_experts_hierarchical(weight, num_replicas, 1, 1, num_gpus)
end

local hist, plan_of = {}, {}   -- per layer: decayed loads; current phy2log row

function P.decide(obs, act)
  local p = P.params
  local R, E, layer = obs.ranks, obs.experts, obs.layer
  local h = hist[layer]
  if h and (obs.step - 1) % p.period == 0 then
    -- physical slots: E + redundant, a multiple of R, within the memory budget
    local per_gpu = math.ceil((E + (p.redundant > 0 and p.redundant or R)) / R)
    if obs.expert_bytes > 0 then per_gpu = math.min(per_gpu, obs.mem_budget // obs.expert_bytes) end
    local slots = per_gpu * R
    local groups = p.groups > 0 and p.groups or obs.nodes
    if E % groups ~= 0 or groups % obs.nodes ~= 0 then groups = 1 end
    local nodes = groups == 1 and 1 or obs.nodes
    if slots >= E then
      -- the same three steps as P.rebalance_experts above, in one C call
      -- (tests/test_policies.c holds the two to the same placement)
      plan_of[layer] = mplb.rebalance_experts(h, slots, groups, nodes, R)
    end
  end
  local row = plan_of[layer]
  if row then
    -- physical slot x (per_gpu slots per GPU) holds logical expert row[x]
    local per_gpu = #row // R
    local experts, gpus = {}, {}
    for x, e in ipairs(row) do experts[x], gpus[x] = e + 1, (x - 1) // per_gpu + 1 end
    act:place_all(experts, gpus)   -- first slot of an expert places it, later ones replicate
  end
  -- learn from this step for the next ones
  hist[layer] = mplb.decay_add(h or {}, obs.expert_load, p.decay)   -- h[e] = h[e] * decay + load[e]
end

return P
