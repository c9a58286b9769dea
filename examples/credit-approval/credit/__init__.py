"""Credit-approval example: the team's own feature and training code for mlcd."""
