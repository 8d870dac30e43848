"""The imperative shell: a run against the fleet (connect, observe, plan), the executor (the
only writes), the rollout driver and its health gates, journaling."""
