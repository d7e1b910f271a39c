/* The experiment's keys: the one table the parser (config.c), its
 * unknown-key check and docs/experiment-reference.md (`mplb help experiment`)
 * are all made from. Adding a key is one X(...) line here plus its field in
 * include/mplb/config.h; a new block is one line in MPLB_EXP_SECTIONS, its
 * TABLE line in the top section, and its keys.
 *
 * X(section, key, type, field, flags, default, lo, hi, unit, meaning)
 *   section  TOP, MODEL, CLUSTER, WORKLOAD (MPLB_EXP_SECTIONS)
 *   type     PRESET (model.preset), INT (int), I64 (int64_t), U64 (uint64_t), NUM (double),
 *            STR (char[]), ENUM (char[]; unit lists the values, '|'-separated),
 *            ZIP (groups of sweep axes, read by mplb sweep), TRACE (a file in traces/, resolved to its path), DATA (a file in
 *            profiles/, resolved), TABLE (a block), MODEL, POLICIES (own readers),
 *            BOOL (int 0/1), LMDIR (a checkpoint directory in models/, resolved),
 *            TEXTS (workload.text: {domain = file in models/, ...}), FIT (per-layer fitted lists)
 *   field    the mplb_exp member it fills (ignored for TABLE/MODEL/POLICIES)
 *   flags    0, REQ (required), REQ_NOPRESET (required unless model.preset),
 *            REQ_SYNTH / REQ_TRACE / REQ_LM (required for workload.kind synthetic / trace / lm)
 *   default  as text ("" for none); lo..hi the allowed range of numbers
 *   unit     unit of a number, or an ENUM's values
 * Sources of the meanings: docs/architecture.md, DESIGN notes in the README.
 */
#ifndef MPLB_EXP_KEYS_H
#define MPLB_EXP_KEYS_H

/* X(section, key in the top table ("" for the top itself), meaning) */
#define MPLB_EXP_SECTIONS(X)                                                        \
    X(TOP, "", "the experiment file returns this table")                            \
    X(MODEL, "model", "the MoE model: a preset name, or a table")                   \
    X(CLUSTER, "cluster", "the EP cluster")                                         \
    X(WORKLOAD, "workload", "the routing the policies see: synthetic, a trace, or a real model's router on text")

#define MPLB_EXP_KEYS(X)                                                                                        \
    X(TOP, name, STR, name, 0, "(the file's name)", 0, 0, "", "name of the experiment (run files, reports)")   \
    X(TOP, model, MODEL, name, REQ, "", 0, 0, "",                                                              \
      "a preset (deepseek-v3, qwen3-235b-a22b, qwen3-30b-a3b, mixtral-8x7b, olmoe-1b-7b, llama-4-maverick) "   \
      "or a table of the model keys")                                                                          \
    X(TOP, cluster, TABLE, name, REQ, "", 0, 0, "", "the cluster keys")                                        \
    X(TOP, workload, TABLE, name, REQ, "", 0, 0, "", "the workload keys")                                      \
    X(TOP, policies, POLICIES, name, REQ, "", 0, 0, "",                                                        \
      "the compared policies: names or {\"name\", param = value, label = \"...\"}; params are checked "        \
      "against the policy's P.params")                                                                         \
    X(TOP, backend, ENUM, backend, 0, "model", 0, 0, "model|cpu|cuda|ep",                                      \
      "where times and the error column come from (mplb/backend.h): model = cost model + weight-error proxy; " \
      "cpu/cuda = every expert's FFN run and timed on this CPU / a GPU, output error measured; ep = real EP "  \
      "layers across mpirun processes (--transport mpi)")                                                       \
    X(TOP, accuracy, DATA, accuracy, 0, "", 0, 0, "",                                                          \
      "an accuracy table (mplb calibrate --accuracy) for the error proxy; looked up in profiles/")             \
    X(TOP, placement_file, PLACE, placement_file, 0, "", 0, 0, "",                                             \
      "initial placement from an engine's physical->logical map: mplb place's JSON (phy2log), SGLang's "     \
      "{\"physical_to_logical_map\"} or TensorRT-LLM's load-balancer YAML (initial_global_assignments) "     \
      "(rows = model layers, slots a multiple of the ranks; rank r holds slots r*slots/R..); looked up in "   \
      "traces/. Default: contiguous, one copy")                                                             \
    X(TOP, repeats, INT, repeats, 0, "3", 1, 32, "",                                                           \
      "measuring backends (cpu, cuda, ep): timed runs of each plan, each policy's interleaved with the "       \
      "baseline's; the row keeps their low median and min/max (mplb/measure.h); the model backend ignores it")  \
    X(TOP, warmup, INT, warmup, 0, "1", 0, 16, "", "measuring backends: untimed runs of each plan before its repeats") \
    X(TOP, seed, U64, seed, 0, "1", 0, 9223372036854775807.0, "", "seed of every random draw")                \
    X(TOP, zip, ZIP, name, 0, "", 0, 0, "",                                                                    \
      "mplb sweep: groups of sweep axes that take their values side by side, e.g. "                          \
      "{{\"workload.tokens\", \"policies.threshold.min_tokens\"}}; the other axes form a cross product")       \
                                                                                                               \
    X(MODEL, preset, PRESET, model.name, 0, "", 0, 0, "", "start from a preset; the other keys override it")      \
    X(MODEL, name, STR, model.name, 0, "custom", 0, 0, "", "the model's name (the preset's if given)")         \
    X(MODEL, layers, INT, model.layers, REQ_NOPRESET, "", 1, 100000, "", "MoE layers (dense layers omitted)") \
    X(MODEL, experts, INT, model.experts, REQ_NOPRESET, "", 1, 1048576, "", "routed experts per layer")        \
    X(MODEL, top_k, INT, model.top_k, REQ_NOPRESET, "", 1, 64, "", "experts per token (at most experts)")      \
    X(MODEL, hidden, INT, model.hidden, REQ_NOPRESET, "", 1, 1048576, "", "hidden size d")                     \
    X(MODEL, ffn, INT, model.ffn, REQ_NOPRESET, "", 1, 4194304, "", "expert FFN intermediate size f (SwiGLU)") \
    X(MODEL, shared_experts, INT, model.shared_experts, 0, "0", 0, 64, "", "shared experts (always active)")   \
                                                                                                               \
    X(CLUSTER, nodes, INT, cluster.nodes, 0, "1", 1, 4096, "", "nodes")                                        \
    X(CLUSTER, gpus_per_node, INT, cluster.gpus_per_node, REQ, "", 1, 1024, "",                                \
      "GPUs (EP ranks) per node; ranks = nodes x gpus_per_node")                                               \
    X(CLUSTER, profile, STR, cluster.profile, 0, "h100", 0, 0, "",                                             \
      "hardware profile: h100, h200, b200, or a file from mplb calibrate")                                     \
    X(CLUSTER, expert_memory_gb, NUM, cluster.expert_memory_gb, 0, "0", 0, 1e6, "GB",                          \
      "expert-weight memory per rank; 0 = 1.25 x the all-bf16 footprint")                                      \
                                                                                                               \
    X(WORKLOAD, kind, ENUM, workload.kind, 0, "synthetic", 0, 0, "synthetic|trace|lm",                         \
      "synthetic routing, a recorded trace (file), or lm: text through a real MoE checkpoint, whose router "   \
      "gives the routing and whose output measures each plan's accuracy (docs/accuracy.md)")                  \
    X(WORKLOAD, steps, INT, workload.steps, REQ, "", 1, 100000000, "", "forward steps (batches)")              \
    X(WORKLOAD, tokens, I64, workload.tokens, REQ_SYNTH, "0", 0, 2147483648.0, "tokens",                       \
      "tokens per (prefill) step over all ranks; with a trace, 0 keeps the trace's")                           \
    X(WORKLOAD, zipf, NUM, workload.zipf, 0, "(unset: the data-fitted log-normal model)", 0, 10, "",          \
      "Zipf exponent of text routing skew (stationary); unset: log-normal popularity fitted to traces/")       \
    X(WORKLOAD, vision_frac, NUM, workload.vision_frac, 0, "0.0", 0, 1, "share",                               \
      "share of vision tokens in prefill steps")                                                               \
    X(WORKLOAD, vision_zipf, NUM, workload.vision_zipf, 0, "1.5", 0, 10, "",                                   \
      "Zipf exponent of vision routing (vision tokens flood few experts)")                                     \
    X(WORKLOAD, vision_sigma, NUM, workload.vision_sigma, 0, "0.0", 0, 10, "",                                 \
      "sd of a prefill step's log-popularity fluctuation of vision routing (other images, other experts); 0: the same vision hot set every step") \
    X(WORKLOAD, families, INT, workload.families, 0, "1", 1, 64, "",                                           \
      "task families (code, math, chat, ...) each with its own expert popularity")                             \
    X(WORKLOAD, drift, NUM, workload.drift, 0, "0.0", 0, 1, "share",                                           \
      "how far the family mix swings over drift_period steps")                                                 \
    X(WORKLOAD, drift_period, INT, workload.drift_period, 0, "50", 1, 100000000, "steps", "period of the drift") \
    X(WORKLOAD, layer_corr, NUM, workload.layer_corr, 0, "0.0", 0, 1, "",                                      \
      "popularity rank carried from one layer to the next")                                                    \
    X(WORKLOAD, src_affinity, NUM, workload.src_affinity, 0, "0.0", 0, 1, "",                                  \
      "tokens of node n prefer family n mod families")                                                         \
    X(WORKLOAD, prefill_every, INT, workload.prefill_every, 0, "1", 1, 100000000, "steps",                     \
      "every n-th step is a prefill, the others decode")                                                       \
    X(WORKLOAD, decode_tokens, I64, workload.decode_tokens, 0, "0", 0, 2147483648.0, "tokens",                 \
      "tokens per decode step (needed when prefill_every > 1)")                                                \
    X(WORKLOAD, skew_from, TRACE, workload.skew_from, 0, "", 0, 0, "",                                         \
      "a trace (traces/NAME.h5) whose per-layer skew replaces Zipf's")                                         \
    X(WORKLOAD, file, TRACE, workload.file, REQ_TRACE, "", 0, 0, "", "kind = \"trace\": the trace file")    \
    X(WORKLOAD, lm, LMDIR, workload.lm, REQ_LM, "", 0, 0, "",                                                  \
      "kind = \"lm\": a Hugging Face MoE checkpoint directory (models/NAME or a path)")                        \
    X(WORKLOAD, text, TEXTS, workload.text_path, REQ_LM, "", 0, 0, "",                                         \
      "kind = \"lm\": {domain = file, ...}: text per domain (bytes, or token ids); \"vision\" counts as vision") \
    X(WORKLOAD, seq, INT, workload.lm_seq, 0, "64", 2, 65536, "tokens", "kind = \"lm\": tokens per sequence")   \
    X(WORKLOAD, batch, INT, workload.lm_batch, 0, "8", 1, 65536, "sequences",                                  \
      "kind = \"lm\": sequences per step (the domains in turn); tokens = seq x batch")                         \
    X(WORKLOAD, acts, ENUM, workload.lm_acts, 0, "matched", 0, 0, "matched|bf16",                              \
      "kind = \"lm\": activations in the expert's format (W8A8, W4A4) or bf16 (weight-only)")                  \
    X(WORKLOAD, ablation, BOOL, workload.lm_ablation, 0, "0", 0, 1, "",                                        \
      "kind = \"lm\": measure each expert's importance by ablation every (step, layer): obs.expert_ablation")      \
    X(WORKLOAD, pop_sigma, NUM, workload.pop_sigma, 0, "0.22", 0, 10, "",                                      \
      "zipf unset: spread (sd of the log) of the base expert popularity (docs/trace-file.md)")                 \
    X(WORKLOAD, step_sigma, NUM, workload.step_sigma, 0, "0 (0.45 with zipf unset)", 0, 10, "",                 \
      "sd of a step's log-popularity fluctuation around the base")                                             \
    X(WORKLOAD, regime_rate, NUM, workload.regime_rate, 0, "0 (0.02 with zipf unset)", 0, 1, "per step",        \
      "probability a step starts a new regime (fresh fluctuation, all layers)")                                \
    X(WORKLOAD, wander_period, INT, workload.wander_period, 0, "0 (40 with zipf unset)", 0, 100000000, "steps", \
      "steps over which the fluctuation rotates to a fresh one inside a regime (0: never)")                    \
    X(WORKLOAD, popularity, FIT, name, 0, "", 0, 0, "",                                                        \
      "per-layer lists of base expert shares (mplb trace fit); rows map to the model's layers by nearest index") \
    X(WORKLOAD, layer_sigma, FIT, name, 0, "", 0, 0, "", "per-layer step_sigma, one per popularity row (mplb trace fit)")

#endif
