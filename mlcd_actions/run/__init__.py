"""``mlcd run``: the orchestrator (:mod:`.pipeline`) and its stage cache (:mod:`.cache`)."""
