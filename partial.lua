return { error = { bf16 = 0 } }
