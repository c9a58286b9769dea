"""CI platforms and git: outputs/summaries/annotations (:mod:`.emit`), GitHub/GitLab REST
(:mod:`.forges`), git facts (:mod:`.gitinfo`), lineage ids (:mod:`.lineage`) and data
versioning with DVC (:mod:`.versioning`)."""
