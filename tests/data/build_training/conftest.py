"""These folders are training code the build-training tests package and check; their own
tests run only inside those tests (on a copy), never as part of this suite."""

collect_ignore_glob = ["*"]
