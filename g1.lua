LEAK = 1
local P = {}
function P.decide() end
return P
