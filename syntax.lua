local P = {
return P
