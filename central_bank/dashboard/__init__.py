"""The central bank dashboard: a page at the central bank's `/` showing the network at work
(money supply, every operator's payments and queues, AML alerts, operators' disclosure logs
checked against the central bank's anchors), opened with a one-time login link."""
