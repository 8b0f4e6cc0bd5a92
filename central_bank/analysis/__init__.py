"""The analysis centre: AML reports for the regulator, the money supply, the central bank's
side of the audit, and the anchors of operators' disclosure logs."""
