"""Exchange area: load and unload between deposit and wallet, cash loads, deposit credits.

service (the money moves; VaultShortfall when the float cannot cover a load), api (routes)."""
