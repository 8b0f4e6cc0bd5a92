"""Signed envelopes on the wire: missing, forged, tampered, stale and replayed requests are
refused by both the central bank and an operator, with stable problem codes; so are requests
signed for another service (audience) and requests in the old envelope format. An unknown key id
gets the same answer as a bad signature."""
