"""The regulator's side of the network, a client like the wallet SDK: its keys, signed
disclosure orders, opening identity escrow, checking operators' disclosure logs (`client`)."""
