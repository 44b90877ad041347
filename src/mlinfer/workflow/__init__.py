"""The batch workflow shared by Step Functions and the local runner: plan, run batches, summarise."""
