"""The registration centre: the token registry (issuance, redemption, split, token status,
RTGS settlement) and its public primitives for the clearing centre."""
