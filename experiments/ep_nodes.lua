-- ep_nodes: real EP layers across 2 nodes of 2 ranks, every policy family
-- run for real (precision switching, replicas, token moves, placement,
-- fp8 dispatch) on a model small enough for CPU experts. Run it with one
-- MPI process per rank; the same file under the cost model is the
-- comparison:
--   mpirun -np 4 ./build/mplb run experiments/ep_nodes.lua --transport mpi -o ep.h5
--   ./build/mplb run experiments/ep_nodes.lua --backend model -o model.h5
-- Tokens cross nodes once per destination node through a proxy rank (node
-- dedup); bytes_inter in ep.h5 is measured, in model.h5 modelled.
return {
  name = "ep_nodes",
  model = { name = "tiny-moe", layers = 4, experts = 16, top_k = 4, hidden = 512, ffn = 256 },
  cluster = { nodes = 2, gpus_per_node = 2, profile = "h100" },
  workload = { steps = 4, tokens = 2048, zipf = 1.2, vision_frac = 0.5 },
  policies = {
    "baseline",
    { "threshold", tau = 1.1, low = "fp8_e4m3", min_tokens = 0, mode = "online" },
    "lis",
    { "redistribute", q = 16 },
    "eplb",
    { "locality" },
  },
  backend = "cpu",
  seed = 11,
}
