"""Settlement area: cross-operator payments between operators and through the central bank.

delivery (single RTGS settlement, delivery and receipt, returns), rtgs / rtgs_settler /
rtgs_inbound (batched gross settlement: gather, settle, deliver, receive), netting (deferred net
settlement: overview and `sync`) with net_submission, net_obligations, net_apply (its steps),
repository (inbound settlements), jobs (outbox handlers), api (interop routes)."""
