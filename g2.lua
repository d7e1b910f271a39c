local P = {}
function P.decide() assert(LEAK == nil, 'leaked') end
return P
